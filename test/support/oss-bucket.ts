import { createHash, randomBytes } from 'node:crypto';
import { crc64ecma } from './crc64.js';
import { OssError, type RequestedPart } from './oss-xml.js';

/** One bucket's objects and open multipart uploads, with OSS's rules; no HTTP here. */

export const MIN_PART_SIZE = 100 * 1024;
const MAX_PART_NUMBER = 10000;

export interface StoredMeta {
  contentType: string;
  meta: Record<string, string>;
}

export interface OssObject extends StoredMeta {
  body: Buffer;
  etag: string;
  crc64: string;
  lastModified: Date;
  type: 'Normal' | 'Multipart';
}

export interface OssPart {
  body: Buffer;
  etag: string;
  crc64: string;
  lastModified: Date;
}

export interface OssUpload extends StoredMeta {
  key: string;
  uploadId: string;
  initiated: Date;
  parts: Map<number, OssPart>;
}

export interface ListQuery {
  prefix: string;
  marker: string;
  maxKeys: number;
  delimiter: string;
}

export interface Listing {
  objects: [string, OssObject][];
  prefixes: string[];
  nextMarker: string | null;
}

const md5 = (body: Buffer) => createHash('md5').update(body).digest();
const quoted = (hex: string) => `"${hex.toUpperCase()}"`;
const unquoted = (etag: string) => etag.replace(/^"|"$/g, '').toUpperCase();

/** An object written: by PutObject, or by CompleteMultipartUpload (with its upload's id). */
export interface OssCommit {
  key: string;
  uploadId?: string;
}

export class OssBucket {
  readonly objects = new Map<string, OssObject>();
  readonly uploads = new Map<string, OssUpload>();
  /** Every object written, in order (a write refused with 409 is not one). */
  readonly commits: OssCommit[] = [];

  constructor(readonly name: string) {}

  object(key: string): OssObject {
    const found = this.objects.get(key);
    if (!found) throw new OssError(404, 'NoSuchKey', 'The specified key does not exist.', { Key: key });
    return found;
  }

  #refuseOverwrite(key: string, forbidOverwrite: boolean): void {
    if (forbidOverwrite && this.objects.has(key)) {
      throw new OssError(409, 'FileAlreadyExists', 'The object you specified already exists and can not be overwritten.', { Key: key });
    }
  }

  put(key: string, body: Buffer, stored: StoredMeta, forbidOverwrite: boolean, now: Date): OssObject {
    this.#refuseOverwrite(key, forbidOverwrite);
    const object: OssObject = { ...stored, body, etag: quoted(md5(body).toString('hex')), crc64: crc64ecma(body), lastModified: now, type: 'Normal' };
    this.objects.set(key, object);
    this.commits.push({ key });
    return object;
  }

  initiate(key: string, stored: StoredMeta, forbidOverwrite: boolean, now: Date): OssUpload {
    this.#refuseOverwrite(key, forbidOverwrite);
    const upload: OssUpload = { ...stored, key, uploadId: randomBytes(16).toString('hex').toUpperCase(), initiated: now, parts: new Map() };
    this.uploads.set(upload.uploadId, upload);
    return upload;
  }

  upload(key: string, uploadId: string): OssUpload {
    const upload = this.uploads.get(uploadId);
    if (!upload || upload.key !== key) {
      throw new OssError(404, 'NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.', { UploadId: uploadId });
    }
    return upload;
  }

  uploadPart(key: string, uploadId: string, partNumber: number, body: Buffer, now: Date): OssPart {
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > MAX_PART_NUMBER) {
      throw new OssError(400, 'InvalidArgument', `Part number must be an integer between 1 and ${MAX_PART_NUMBER}, inclusive.`);
    }
    const part: OssPart = { body, etag: quoted(md5(body).toString('hex')), crc64: crc64ecma(body), lastModified: now };
    this.upload(key, uploadId).parts.set(partNumber, part);
    return part;
  }

  complete(key: string, uploadId: string, requested: RequestedPart[], forbidOverwrite: boolean, now: Date): OssObject {
    const upload = this.upload(key, uploadId);
    const parts = requested.map(({ partNumber, etag }, i) => {
      if (i > 0 && partNumber <= requested[i - 1]!.partNumber) {
        throw new OssError(400, 'InvalidPartOrder', 'The list of parts was not in ascending order. Parts list must be specified in order by part number.');
      }
      const part = upload.parts.get(partNumber);
      if (!part || unquoted(part.etag) !== unquoted(etag)) {
        throw new OssError(400, 'InvalidPart', 'One or more of the specified parts could not be found or the specified entity tag might not have matched the part\'s entity tag.', { PartNumber: String(partNumber), ETag: etag });
      }
      return part;
    });
    parts.slice(0, -1).forEach((part, i) => {
      if (part.body.length < MIN_PART_SIZE) {
        throw new OssError(400, 'EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed size.', { PartNumber: String(requested[i]!.partNumber), ProposedSize: String(part.body.length), MinSizeAllowed: String(MIN_PART_SIZE) });
      }
    });
    this.#refuseOverwrite(key, forbidOverwrite);
    const body = Buffer.concat(parts.map((p) => p.body));
    const etagHex = md5(Buffer.concat(parts.map((p) => Buffer.from(unquoted(p.etag), 'hex')))).toString('hex');
    const object: OssObject = {
      contentType: upload.contentType, meta: upload.meta, body, etag: `"${etagHex.toUpperCase()}-${parts.length}"`,
      crc64: crc64ecma(body), lastModified: now, type: 'Multipart',
    };
    this.objects.set(key, object);
    this.uploads.delete(uploadId);
    this.commits.push({ key, uploadId });
    return object;
  }

  abort(key: string, uploadId: string): void {
    this.upload(key, uploadId);
    this.uploads.delete(uploadId);
  }

  /** Keys in order after `marker` under `prefix`; with a delimiter, deeper keys fold into common prefixes. */
  list(q: ListQuery): Listing {
    const keys = [...this.objects.keys()].filter((k) => k.startsWith(q.prefix) && k > q.marker).sort();
    const listing: Listing = { objects: [], prefixes: [], nextMarker: null };
    let last = '';
    for (const key of keys) {
      const cut = q.delimiter === '' ? -1 : key.indexOf(q.delimiter, q.prefix.length);
      const commonPrefix = cut < 0 ? null : key.slice(0, cut + q.delimiter.length);
      if (commonPrefix !== null && (commonPrefix === last || commonPrefix <= q.marker)) continue;
      if (listing.objects.length + listing.prefixes.length === q.maxKeys) {
        listing.nextMarker = last;
        break;
      }
      if (commonPrefix !== null) listing.prefixes.push(commonPrefix);
      else listing.objects.push([key, this.objects.get(key)!]);
      last = commonPrefix ?? key;
    }
    return listing;
  }
}
