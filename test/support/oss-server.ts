import { createHash, randomBytes } from 'node:crypto';
import { type HttpBindings, type ServerType, serve } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { type Context, Hono } from 'hono';
import { type ListQuery, OssBucket, type OssCommit, type OssObject, type StoredMeta } from './oss-bucket.js';
import { OssFaults, type OssRequestInfo } from './oss-faults.js';
import { bucketInfoXml, completeXml, initiateXml, listObjectsXml, listPartsXml, listUploadsXml } from './oss-results.js';
import { isSignedSubresource, OssKeyring, verifyRequest } from './oss-signature.js';
import { sendThrottled } from './oss-throttle.js';
import { errorXml, OssError, parseCompleteRequest } from './oss-xml.js';

/**
 * An in-process OSS that is strict where OSS is: V1 signatures (header and presigned URL), the bucket from the Host
 * header, objects, multipart uploads and their rules, OSS's Range behaviour, crc64 and ETag headers, OSS XML errors.
 * Objects live in memory. Listens on 127.0.0.1 only; `localhost` as Host (ali-oss `cname: true`) means `cnameBucket`.
 */

export interface OssServerOptions {
  buckets?: string[];
  /** accessKeyId -> accessKeySecret */
  credentials?: Record<string, string>;
  /** The bucket served for Host `localhost`; the first bucket unless given. */
  cnameBucket?: string;
}

export interface OpenUpload {
  key: string;
  uploadId: string;
  parts: number[];
}

type Ctx = Context<{ Bindings: HttpBindings }>;

/** Sub-resources this server carries out; any other signed one is answered NotImplemented rather than misread. */
const HANDLED_SUBRESOURCES = new Set(['bucketInfo', 'security-token', 'uploads', 'uploadId', 'partNumber', 'response-content-type', 'response-content-language',
  'response-expires', 'response-cache-control', 'response-content-disposition', 'response-content-encoding']);

export class OssTestServer {
  readonly faults = new OssFaults();
  /** The server's clock in ms; a test moves it to expire presigned URLs or to skew request dates. */
  now: () => number = () => Date.now();
  readonly #buckets = new Map<string, OssBucket>();
  /** The key pairs accepted; a test grants (temporary keys with their security token) and revokes them. */
  readonly keyring: OssKeyring;
  readonly #cnameBucket: string;
  #server: ServerType | null = null;
  #port = 0;

  private constructor(options: OssServerOptions) {
    for (const name of options.buckets ?? ['test-bucket']) this.#buckets.set(name, new OssBucket(name));
    this.keyring = new OssKeyring(options.credentials ?? { 'test-ak': 'test-secret' });
    this.#cnameBucket = options.cnameBucket ?? [...this.#buckets.keys()][0]!;
  }

  static async start(options: OssServerOptions = {}): Promise<OssTestServer> {
    const oss = new OssTestServer(options);
    const app = new Hono<{ Bindings: HttpBindings }>();
    app.all('*', (c) => oss.#handle(c));
    await new Promise<void>((resolve, reject) => {
      oss.#server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, (info) => {
        oss.#port = info.port;
        resolve();
      });
      oss.#server.once('error', reject);
    });
    return oss;
  }

  /** For ali-oss `endpoint` (it sends `Host: <bucket>.<region host>` to an IP endpoint). */
  get endpoint(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** For ali-oss with `cname: true` (signatureUrl refuses IP endpoints). */
  get cnameEndpoint(): string {
    return `http://localhost:${this.#port}`;
  }

  get port(): number {
    return this.#port;
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      if ('closeAllConnections' in server) server.closeAllConnections();
    });
  }

  #bucket(name = this.#cnameBucket): OssBucket {
    const bucket = this.#buckets.get(name);
    if (!bucket) throw new OssError(404, 'NoSuchBucket', 'The specified bucket does not exist.', { BucketName: name });
    return bucket;
  }

  keys(bucket?: string): string[] {
    return [...this.#bucket(bucket).objects.keys()].sort();
  }

  objectBytes(key: string, bucket?: string): Buffer | undefined {
    return this.#bucket(bucket).objects.get(key)?.body;
  }

  openUploads(bucket?: string): OpenUpload[] {
    return [...this.#bucket(bucket).uploads.values()].map((u) => ({ key: u.key, uploadId: u.uploadId, parts: [...u.parts.keys()].sort((a, b) => a - b) }));
  }

  /** Every object written so far (PutObject, CompleteMultipartUpload), in order. */
  commits(bucket?: string): OssCommit[] {
    return [...this.#bucket(bucket).commits];
  }

  /** Makes an object look written at `lastModified` (as one committed long ago). */
  backdateObject(key: string, lastModified: Date, bucket?: string): void {
    this.#bucket(bucket).object(key).lastModified = lastModified;
  }

  /** Makes an open multipart upload look initiated at `initiated` (as one a crashed process left long ago). */
  backdateUpload(uploadId: string, initiated: Date, bucket?: string): void {
    const upload = this.#bucket(bucket).uploads.get(uploadId);
    if (!upload) throw new Error(`no open upload ${uploadId}`);
    upload.initiated = initiated;
  }

  /** Bucket, signature, operation, armed faults (requests are counted once authenticated), then the operation. */
  async #handle(c: Ctx): Promise<Response> {
    const requestId = randomBytes(12).toString('hex').toUpperCase();
    const host = c.req.header('host') ?? '';
    try {
      const [rawPath = '/', rawQuery = ''] = (c.env.incoming.url ?? '/').split(/\?(.*)/s);
      const query = new URLSearchParams(rawQuery);
      const hostname = host.replace(/:\d+$/, '');
      const bucket = this.#bucket(hostname === 'localhost' || /^[\d.]+$/.test(hostname) ? this.#cnameBucket : hostname.split('.')[0]);
      const key = decodeKey(rawPath);
      verifyRequest({ method: c.req.method, headers: c.req.raw.headers, query, bucket: bucket.name, key }, this.keyring, this.now());
      const request = classify(c.req.method, bucket.name, key, query);
      if (this.faults.stalls(request)) {
        await new Promise((resolve) => c.env.incoming.socket.once('close', resolve));
        return RESPONSE_ALREADY_SENT;
      }
      if (this.faults.admit(request)) {
        await c.req.arrayBuffer();
        throw new OssError(500, 'InternalError', 'We encountered an internal error. Please try again.');
      }
      return await this.#carryOut(c, bucket, request, query, requestId);
    } catch (err) {
      if (!(err instanceof OssError)) throw err;
      if (c.req.method !== 'GET' && c.req.method !== 'HEAD') await c.req.arrayBuffer().catch(() => undefined);
      const body = errorXml(err, requestId, host);
      // OSS repeats the error document base64-encoded in x-oss-err: all a HEAD or a streamed GET (ali-oss getStream) sees.
      const headers = { 'content-type': 'application/xml', 'x-oss-request-id': requestId, 'x-oss-err': Buffer.from(body).toString('base64') };
      return new Response(c.req.method === 'HEAD' ? null : body, { status: err.status, headers });
    }
  }

  async #carryOut(c: Ctx, bucket: OssBucket, r: OssRequestInfo, query: URLSearchParams, requestId: string): Promise<Response> {
    const now = new Date(this.now());
    const reply = (status: number, headers: Record<string, string> = {}, body: string | null = null) =>
      new Response(body, { status, headers: { 'x-oss-request-id': requestId, ...(body === null ? {} : { 'content-type': 'application/xml' }), ...headers } });
    const forbidOverwrite = c.req.header('x-oss-forbid-overwrite') === 'true';
    switch (r.operation) {
      case 'GetBucketInfo':
        return reply(200, {}, bucketInfoXml(bucket.name));
      case 'PutObject': {
        const o = bucket.put(r.key, await readBody(c), storedMeta(c), forbidOverwrite, now);
        return reply(200, { etag: o.etag, 'x-oss-hash-crc64ecma': o.crc64 });
      }
      case 'GetObject':
        return this.#get(c, bucket.object(r.key), r, query, requestId);
      case 'HeadObject': {
        const o = bucket.object(r.key);
        return reply(200, { ...objectHeaders(o, query), 'content-length': String(o.body.length) });
      }
      case 'DeleteObject':
        bucket.objects.delete(r.key);
        return reply(204);
      case 'ListObjects': {
        const q = listQuery(query);
        return reply(200, {}, listObjectsXml(bucket.name, q, bucket.list(q)));
      }
      case 'ListMultipartUploads': {
        const prefix = query.get('prefix') ?? '';
        return reply(200, {}, listUploadsXml(bucket.name, prefix, [...bucket.uploads.values()].filter((u) => u.key.startsWith(prefix))));
      }
      case 'InitiateMultipartUpload':
        return reply(200, {}, initiateXml(bucket.name, bucket.initiate(r.key, storedMeta(c), forbidOverwrite, now)));
      case 'UploadPart': {
        const part = bucket.uploadPart(r.key, r.uploadId ?? '', r.partNumber ?? NaN, await readBody(c), now);
        return reply(200, { etag: part.etag, 'x-oss-hash-crc64ecma': part.crc64 });
      }
      case 'CompleteMultipartUpload': {
        const requested = parseCompleteRequest((await readBody(c)).toString('utf8'));
        const o = bucket.complete(r.key, r.uploadId ?? '', requested, forbidOverwrite, now);
        const location = `http://${c.req.header('host') ?? ''}/${r.key}`;
        return reply(200, { etag: o.etag, 'x-oss-hash-crc64ecma': o.crc64 }, completeXml(bucket.name, r.key, o, location));
      }
      case 'AbortMultipartUpload':
        bucket.abort(r.key, r.uploadId ?? '');
        return reply(204);
      case 'ListParts': {
        const upload = bucket.upload(r.key, r.uploadId ?? '');
        const maxParts = boundedInteger(query.get('max-parts'), 1000, 'max-parts');
        return reply(200, {}, listPartsXml(bucket.name, upload, Number(query.get('part-number-marker') ?? 0), maxParts));
      }
    }
  }

  async #get(c: Ctx, o: OssObject, r: OssRequestInfo, query: URLSearchParams, requestId: string): Promise<Response> {
    const size = o.body.length;
    const range = parseRange(c.req.header('range'), size, c.req.header('x-oss-range-behavior') === 'standard');
    const [start, end] = range ?? [0, size - 1];
    const headers: Record<string, string> = { ...objectHeaders(o, query), 'content-length': String(end - start + 1), 'x-oss-request-id': requestId };
    if (range) headers['content-range'] = `bytes ${start}-${end}/${size}`;
    const status = range ? 206 : 200;
    const body = o.body.subarray(start, end + 1);
    const resetAfter = this.faults.resetAfter(r);
    if (resetAfter === undefined && this.faults.bytesPerSecond === null) return new Response(new Uint8Array(body.buffer as ArrayBuffer, body.byteOffset, body.length), { status, headers });
    await sendThrottled(c.env.outgoing, status, headers, body, { resetAfter, bytesPerSecond: this.faults.bytesPerSecond });
    return RESPONSE_ALREADY_SENT;
  }
}

function decodeKey(rawPath: string): string {
  try {
    return decodeURIComponent(rawPath.slice(1));
  } catch {
    throw new OssError(400, 'InvalidObjectName', 'The specified object name is not valid.');
  }
}

/** Which OSS operation a request is, from its method, key and sub-resources. */
function classify(method: string, bucket: string, key: string, query: URLSearchParams): OssRequestInfo {
  const unknown = [...query.keys()].find((name) => isSignedSubresource(name) && !HANDLED_SUBRESOURCES.has(name));
  if (unknown !== undefined) throw new OssError(501, 'NotImplemented', `The test server does not implement ?${unknown}.`);
  const uploadId = query.get('uploadId') ?? undefined;
  const base = { bucket, key, ...(uploadId === undefined ? {} : { uploadId }) };
  if (key === '' && method === 'GET') {
    return { ...base, operation: query.has('bucketInfo') ? 'GetBucketInfo' : query.has('uploads') ? 'ListMultipartUploads' : 'ListObjects' };
  }
  if (key !== '') {
    if (method === 'PUT' && query.has('partNumber')) return { ...base, operation: 'UploadPart', partNumber: Number(query.get('partNumber')) };
    if (method === 'PUT') return { ...base, operation: 'PutObject' };
    if (method === 'POST' && query.has('uploads')) return { ...base, operation: 'InitiateMultipartUpload' };
    if (method === 'POST' && uploadId !== undefined) return { ...base, operation: 'CompleteMultipartUpload' };
    if (method === 'DELETE') return { ...base, operation: uploadId === undefined ? 'DeleteObject' : 'AbortMultipartUpload' };
    if (method === 'GET') return { ...base, operation: uploadId === undefined ? 'GetObject' : 'ListParts' };
    if (method === 'HEAD') return { ...base, operation: 'HeadObject' };
  }
  throw new OssError(405, 'MethodNotAllowed', 'The specified method is not allowed against this resource.');
}

/** The request body, refused with InvalidDigest when a Content-MD5 was sent and does not match it. */
async function readBody(c: Ctx): Promise<Buffer> {
  const body = Buffer.from(await c.req.arrayBuffer());
  const expected = c.req.header('content-md5');
  if (expected !== undefined && createHash('md5').update(body).digest('base64') !== expected) {
    throw new OssError(400, 'InvalidDigest', 'The Content-MD5 you specified was invalid.');
  }
  return body;
}

function storedMeta(c: Ctx): StoredMeta {
  const meta = Object.fromEntries([...c.req.raw.headers.entries()].filter(([name]) => name.startsWith('x-oss-meta-')));
  return { contentType: c.req.header('content-type') ?? 'application/octet-stream', meta };
}

function objectHeaders(o: OssObject, query: URLSearchParams): Record<string, string> {
  const headers: Record<string, string> = {
    'content-type': o.contentType, etag: o.etag, 'last-modified': o.lastModified.toUTCString(), 'accept-ranges': 'bytes',
    'x-oss-object-type': o.type, 'x-oss-storage-class': 'Standard', 'x-oss-hash-crc64ecma': o.crc64, ...o.meta,
  };
  for (const [name, value] of query) if (name.startsWith('response-')) headers[name.slice('response-'.length)] = value;
  return headers;
}

function boundedInteger(value: string | null, fallback: number, name: string): number {
  if (value === null) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 1000) throw new OssError(400, 'InvalidArgument', `${name} must be an integer between 1 and 1000.`);
  return n;
}

function listQuery(query: URLSearchParams): ListQuery {
  return { prefix: query.get('prefix') ?? '', marker: query.get('marker') ?? '', delimiter: query.get('delimiter') ?? '', maxKeys: boundedInteger(query.get('max-keys'), 100, 'max-keys') };
}

/**
 * OSS's Range rules: only the first range counts; by default a malformed or out-of-bounds range is ignored (200, whole
 * object); with `x-oss-range-behavior: standard` an end past the object is clamped and a start past it is 416.
 */
function parseRange(header: string | undefined, size: number, standard: boolean): [number, number] | null {
  const m = header === undefined ? null : /^bytes=(\d*)-(\d*)(,|$)/.exec(header);
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || (suffix > size && !standard)) return null;
    return [Math.max(0, size - suffix), size - 1];
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Number(m[2]);
  if (m[2] !== '' && end < start) return null;
  if (start >= size) {
    if (standard) throw new OssError(416, 'InvalidRange', 'The requested range cannot be satisfied');
    return null;
  }
  if (end >= size && !standard) return null;
  return [start, Math.min(end, size - 1)];
}
