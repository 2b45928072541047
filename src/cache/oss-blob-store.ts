import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type OSS from 'ali-oss';
import { isDigest } from '../oci/digest.js';
import { NO_OSS_OBSERVER, type OssObserver } from '../observability/oss-metrics.js';
import type { BlobInfo, BlobReader, BlobStore, BlobStoreEvents, BlobWriter, Leftover } from './blob-store.js';
import { FsBlobWriter } from './fs-blob-io.js';
import { OssBlobReader } from './oss-blob-reader.js';
import { OssBlobWriter } from './oss-blob-writer.js';
import { bucketKeyPrefix, isNotFound, ossClient, type OssSettings } from './oss-client.js';
import { OssObjects } from './oss-objects.js';
import { ReaderCounts } from './reader-counts.js';

export type OssStoreOptions = OssSettings & {
  /** Keys live under it ("" or e.g. "mirror/"). */
  prefix: string;
  partSize: number;
  /** Local directory for the spool files of writers (a fill's readers read back from them). */
  tmpDir: string;
  /** A multipart upload untouched this long is taken as dead and aborted by prepare() (default 24h). */
  staleUploadMs?: number;
  /** Told of every OSS request and the body bytes moved (metrics). */
  observer?: OssObserver;
};

const UPLOAD_MARK = '?uploadId=';
/** The longest /readyz waits for the bucket. */
const PROBE_TIMEOUT_MS = 3000;

/**
 * Blobs in an OSS bucket through ali-oss, content-addressed at `<prefix>blobs/sha256/<hex>`: an object exists
 * under a blob key only once its bytes were verified (see OssBlobWriter). Writers spool to tmpDir locally.
 */
export class OssBlobStore extends EventEmitter<BlobStoreEvents> implements BlobStore {
  readonly #client: OSS;
  readonly #readers = new ReaderCounts();
  /** Multipart uploads of this process's writers: never leftovers. */
  readonly #ownUploads = new Set<string>();
  readonly #blobsPrefix: string;
  readonly #observer: OssObserver;
  readonly #bucket: OssObjects;

  constructor(private readonly opts: OssStoreOptions) {
    super();
    this.#client = ossClient(opts);
    this.#observer = opts.observer ?? NO_OSS_OBSERVER;
    this.#bucket = new OssObjects(this.#client, opts.bucket, this.#observer);
    this.#blobsPrefix = `${bucketKeyPrefix(opts.prefix)}blobs/sha256/`;
  }

  #key(digest: string): string {
    return this.#blobsPrefix + digest.replace(/^sha256:/, '');
  }

  #call<T>(operation: string, key: string, call: (client: OSS) => Promise<T>): Promise<T> {
    return this.#bucket.call(operation, key, call);
  }

  inUse(digest: string): boolean {
    return this.#readers.inUse(digest);
  }

  async stat(digest: string): Promise<{ size: number } | null> {
    const key = this.#key(digest);
    const head = await this.#call('HeadObject', key, (c) => c.head(key)).catch((err: unknown) => {
      if (isNotFound(err)) return null;
      throw err;
    });
    return head && { size: Number(head.res.headers['content-length']) };
  }

  async open(digest: string): Promise<BlobReader | null> {
    const info = await this.stat(digest);
    if (!info) return null;
    return new OssBlobReader({ client: this.#client, bucket: this.opts.bucket, key: this.#key(digest), timeoutMs: this.opts.timeoutMs, observer: this.#observer }, info.size, this.#readers.acquire(digest));
  }

  async createWriter(digest: string): Promise<BlobWriter> {
    const spoolPath = join(this.opts.tmpDir, `${digest.replace(':', '-')}.${randomBytes(6).toString('hex')}.oss`);
    const handle = await open(spoolPath, 'wx+');
    return this.writerOver(new FsBlobWriter(digest, spoolPath, handle, '', { committed: () => {}, closed: () => {} }));
  }

  /**
   * A writer uploading what spool is given (or, with uploading false, only spooling until its startUploading()),
   * its part uploads reading spool's file by its path. The writer closes spool but never commits it: the tiered
   * store commits its local writer after the upload was completed.
   */
  writerOver(spool: FsBlobWriter, opts: { uploading?: boolean } = {}): OssBlobWriter {
    const { digest } = spool;
    const target = { client: this.#client, bucket: this.opts.bucket, key: this.#key(digest), partSize: this.opts.partSize, spool, observer: this.#observer };
    const tell = {
      committed: (blob: BlobInfo) => this.emit('commit', blob),
      started: (uploadId: string) => this.#ownUploads.add(uploadId),
      closed: (uploadId: string | null) => uploadId && this.#ownUploads.delete(uploadId),
    };
    return new OssBlobWriter(digest, target, tell, opts);
  }

  async delete(digest: string): Promise<boolean> {
    if (this.inUse(digest)) return false;
    this.emit('delete', digest);
    const key = this.#key(digest);
    await this.#call('DeleteObject', key, (c) => c.delete(key));
    return true;
  }

  async *list(): AsyncIterable<BlobInfo> {
    for await (const o of this.#objects()) if (isDigest(`sha256:${o.name}`)) yield { digest: `sha256:${o.name}`, size: o.size };
  }

  /** Every object under blobs/sha256/, by its name there. */
  async *#objects(): AsyncIterable<{ name: string; size: number; lastModified: number }> {
    for await (const o of this.#bucket.list(this.#blobsPrefix)) yield { name: o.key.slice(this.#blobsPrefix.length), size: o.size, lastModified: o.lastModified };
  }

  /** Multipart uploads under the prefix that no writer of this process owns, and objects not named for a digest. */
  async leftovers(olderThan: number): Promise<Leftover[]> {
    const found = await this.staleUploads(olderThan);
    for await (const o of this.#objects()) {
      if (!isDigest(`sha256:${o.name}`) && o.lastModified < olderThan) found.push({ name: this.#blobsPrefix + o.name, size: o.size });
    }
    return found;
  }

  /** Multipart uploads under the prefix that no writer of this process owns, initiated before olderThan, with their bytes. */
  async staleUploads(olderThan: number): Promise<Leftover[]> {
    const found: Leftover[] = [];
    for (const u of await this.#staleUploads(olderThan)) found.push({ name: `${u.key}${UPLOAD_MARK}${u.uploadId}`, size: await this.#uploadedBytes(u.key, u.uploadId) });
    return found;
  }

  /** Aborts uploads left long enough ago to be dead (another replica's live ones are younger), without sizing them. */
  async abortStaleUploads(): Promise<void> {
    const stale = await this.#staleUploads(Date.now() - (this.opts.staleUploadMs ?? 86_400_000));
    await this.removeLeftovers(stale.map((u) => ({ name: `${u.key}${UPLOAD_MARK}${u.uploadId}`, size: 0 })));
  }

  async #staleUploads(olderThan: number): Promise<{ key: string; uploadId: string }[]> {
    return (await this.#uploads()).filter((u) => !this.#ownUploads.has(u.uploadId) && u.initiated < olderThan);
  }

  async removeLeftovers(leftovers: Leftover[]): Promise<void> {
    for (const { name } of leftovers) {
      const [key, uploadId] = name.split(UPLOAD_MARK) as [string, string | undefined];
      const removal = uploadId === undefined
        ? this.#call('DeleteObject', key, (c) => c.delete(key))
        : this.#call('AbortMultipartUpload', key, (c) => c.abortMultipartUpload(key, uploadId));
      await removal.catch(() => {}); // gone meanwhile, or left for the next run
    }
  }

  async #uploads(): Promise<{ key: string; uploadId: string; initiated: number }[]> {
    const uploads: { key: string; uploadId: string; initiated: number }[] = [];
    let markers: { 'key-marker': string; 'upload-id-marker': string } | null = null;
    do {
      const query: { prefix: string; 'key-marker'?: string; 'upload-id-marker'?: string } = { prefix: this.#blobsPrefix, ...markers };
      const page = await this.#call('ListMultipartUploads', '', (c) => c.listUploads(query));
      for (const u of page.uploads) uploads.push({ key: u.name, uploadId: u.uploadId, initiated: Date.parse(u.initiated) });
      markers = page.isTruncated ? { 'key-marker': page.nextKeyMarker ?? '', 'upload-id-marker': page.nextUploadIdMarker ?? '' } : null;
    } while (markers);
    return uploads;
  }

  async #uploadedBytes(key: string, uploadId: string): Promise<number> {
    let bytes = 0;
    let marker = 0;
    for (;;) {
      const page = await this.#call('ListParts', key, (c) => c.listParts(key, uploadId, { 'max-parts': 1000, 'part-number-marker': marker }));
      for (const p of [page.parts].flat()) bytes += Number(p.Size);
      if (String(page.isTruncated) !== 'true') return bytes;
      marker = Number(page.nextPartNumberMarker);
    }
  }

  /** Clears the local spool directory and aborts dead uploads (abortStaleUploads). */
  async prepare(): Promise<void> {
    await rm(this.opts.tmpDir, { recursive: true, force: true });
    await mkdir(this.opts.tmpDir, { recursive: true });
    await this.abortStaleUploads();
  }

  /**
   * GetBucketInfo (a small answer): the bucket exists, answers and takes the credentials. Bounded for /readyz: the
   * client's timeout and its retries after connection failures could otherwise hold the answer for minutes.
   */
  async probe(): Promise<void> {
    const timeout = Math.min(this.opts.timeoutMs, PROBE_TIMEOUT_MS);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeout} ms`)), timeout);
    });
    const asked = this.#call('GetBucketInfo', '', (c) => c.getBucketInfo(this.opts.bucket, { timeout }));
    asked.catch(() => {}); // answered after the deadline: already reported as late
    try {
      await Promise.race([asked, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  async presignedUrl(digest: string, ttlMs: number): Promise<string | null> {
    return this.#client.asyncSignatureUrl(this.#key(digest), { expires: Math.max(1, Math.ceil(ttlMs / 1000)) });
  }
}
