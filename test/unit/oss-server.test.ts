import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { Readable } from 'node:stream';
import OSS, { type SentRequest } from 'ali-oss';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { crc64ecma } from '../support/crc64.js';
import { randomBlob } from '../support/fake-upstream.js';
import { OssTestServer } from '../support/oss-server.js';

const BUCKET = 'mirror-test';
const AK = 'test-ak';
const SECRET = 'test-secret';
const KIB = 1024;

let oss: OssTestServer;
beforeAll(async () => {
  oss = await OssTestServer.start({ buckets: [BUCKET], credentials: { [AK]: SECRET } });
});
afterAll(() => oss.close());
afterEach(() => {
  oss.now = () => Date.now();
  oss.faults.bytesPerSecond = null;
});

const client = (overrides: Partial<ConstructorParameters<typeof OSS>[0]> = {}) =>
  new OSS({ endpoint: oss.endpoint, bucket: BUCKET, accessKeyId: AK, accessKeySecret: SECRET, secure: false, timeout: 10_000, ...overrides });

/** The ali-oss error a promise rejects with (a test fails if it resolves). */
async function ossError(p: Promise<unknown>): Promise<{ code: string; status: number; requestId?: string; message: string }> {
  const err = await p.then(
    () => {
      throw new Error('expected the request to fail');
    },
    (e: unknown) => e as { code: string; status: number; requestId?: string; message: string },
  );
  return err;
}

interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function rawRequest(method: string, path: string, headers: Record<string, string>, body?: Buffer | string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: oss.port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The request ali-oss would send (url, signed headers, body), captured instead of sent. */
async function captureRequest(operation: (c: OSS) => Promise<unknown>): Promise<{ path: string; headers: Record<string, string>; content?: Buffer | string; method: string }> {
  let sent: { url: string; params: SentRequest } | undefined;
  const capturing = client({ urllib: { request: async (url, params) => { sent = { url, params }; throw Object.assign(new Error('captured'), { status: -1 }); } } });
  await operation(capturing).catch(() => undefined);
  const url = new URL(sent!.url);
  const headers = Object.fromEntries(Object.entries(sent!.params.headers).map(([k, v]) => [k, String(v)]));
  return { method: sent!.params.method, path: url.pathname + url.search, headers, content: sent!.params.content };
}

async function readAll(stream: NodeJS.ReadableStream): Promise<{ bytes: Buffer; error: unknown }> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return { bytes: Buffer.concat(chunks), error: null };
  } catch (error) {
    return { bytes: Buffer.concat(chunks), error };
  }
}

const hex = (b: Buffer) => b.toString('hex');
const md5Hex = (b: Buffer) => createHash('md5').update(b).digest('hex').toUpperCase();

describe('OSS test server: V1 signatures', () => {
  it('accepts a request signed with the right secret and refuses a wrong secret or an unknown access key id', async () => {
    await client().put('sig/ok', Buffer.from('signed'));
    expect((await client().get('sig/ok')).content.toString()).toBe('signed');

    const wrongSecret = await ossError(client({ accessKeySecret: 'not-the-secret' }).get('sig/ok'));
    expect(wrongSecret).toMatchObject({ code: 'SignatureDoesNotMatch', status: 403 });
    expect(wrongSecret.requestId).toMatch(/^[0-9A-F]{24}$/);
    expect(await ossError(client({ accessKeySecret: 'not-the-secret' }).put('sig/other', Buffer.from('x')))).toMatchObject({ code: 'SignatureDoesNotMatch' });
    expect(oss.keys()).not.toContain('sig/other');

    expect(await ossError(client({ accessKeyId: 'someone-else' }).get('sig/ok'))).toMatchObject({ code: 'InvalidAccessKeyId', status: 403 });
  });

  it('signs keys with spaces, plus signs and non-ASCII characters as the raw key', async () => {
    const key = 'dir/a b+c ü?.txt';
    await client().put(key, Buffer.from('odd name'));
    expect(oss.keys()).toContain(key);
    expect((await client().get(key)).content.toString()).toBe('odd name');
  });

  it('refuses a captured request once a signed header, the path, the body or a signed sub-resource is changed', async () => {
    const sent = await captureRequest((c) => c.put('tamper/obj', Buffer.from('original'), { meta: { owner: 'alice' } }));
    expect(sent.headers['x-oss-meta-owner']).toBe('alice');
    // The captured request is valid as is: replaying it unchanged stores the object.
    expect((await rawRequest(sent.method, sent.path, sent.headers, sent.content)).status).toBe(200);
    expect(oss.objectBytes('tamper/obj')?.toString()).toBe('original');

    const changedMeta = await rawRequest(sent.method, sent.path, { ...sent.headers, 'x-oss-meta-owner': 'mallory' }, sent.content);
    expect(changedMeta.status).toBe(403);
    expect(changedMeta.headers['content-type']).toBe('application/xml');
    expect(changedMeta.headers['x-oss-request-id']).toMatch(/^[0-9A-F]{24}$/);
    expect(changedMeta.body).toMatch(/^<\?xml[^>]*>\n<Error><Code>SignatureDoesNotMatch<\/Code><Message>[^<]+<\/Message><RequestId>[0-9A-F]{24}<\/RequestId><HostId>mirror-test\.[^<]+<\/HostId>/);

    const addedOssHeader = await rawRequest(sent.method, sent.path, { ...sent.headers, 'x-oss-forbid-overwrite': 'true' }, sent.content);
    expect(addedOssHeader.body).toContain('<Code>SignatureDoesNotMatch</Code>');
    expect((await rawRequest(sent.method, '/tamper/other', sent.headers, sent.content)).body).toContain('<Code>SignatureDoesNotMatch</Code>');
    expect((await rawRequest(sent.method, `${sent.path}?acl`, sent.headers, sent.content)).body).toContain('<Code>SignatureDoesNotMatch</Code>');
    const changedType = await rawRequest(sent.method, sent.path, { ...sent.headers, 'Content-Type': 'text/html' }, sent.content);
    expect(changedType.body).toContain('<Code>SignatureDoesNotMatch</Code>');
    // The body is covered through Content-MD5.
    const changedBody = await rawRequest(sent.method, sent.path, sent.headers, Buffer.from('replaced'));
    expect(changedBody.body).toContain('<Code>InvalidDigest</Code>');
    expect(oss.objectBytes('tamper/obj')?.toString()).toBe('original');
  });

  it('signs only the sub-resources OSS signs: an unsigned query parameter may change, a signed one may not', async () => {
    await client().put('sub/obj', Buffer.from('x'));
    const get = await captureRequest((c) => c.get('sub/obj'));
    expect((await rawRequest('GET', `${get.path}?prefix=anything`, get.headers)).status).toBe(200);
    expect((await rawRequest('GET', `${get.path}?response-content-type=text/html`, get.headers)).body).toContain('<Code>SignatureDoesNotMatch</Code>');
  });

  it('refuses a request without a signature and a request dated more than 15 minutes from the server clock', async () => {
    await client().put('skew/obj', Buffer.from('x'));
    const anonymous = await rawRequest('GET', '/skew/obj', { host: `${BUCKET}.oss-cn-hangzhou.aliyuncs.com` });
    expect(anonymous.status).toBe(403);
    expect(anonymous.body).toContain('<Code>AccessDenied</Code>');

    oss.now = () => Date.now() + 14 * 60_000;
    await client().head('skew/obj');
    oss.now = () => Date.now() + 16 * 60_000;
    expect(await ossError(client().head('skew/obj'))).toMatchObject({ code: 'RequestTimeTooSkewed', status: 403 });
    oss.now = () => Date.now() - 16 * 60_000;
    expect(await ossError(client().get('skew/obj'))).toMatchObject({ code: 'RequestTimeTooSkewed' });
  });

  it('answers GetBucketInfo, the start-up check of a bucket and its credentials', async () => {
    expect((await client().getBucketInfo(BUCKET)).bucket.Name).toBe(BUCKET);
    expect(await ossError(client({ accessKeySecret: 'not-the-secret' }).getBucketInfo(BUCKET))).toMatchObject({ code: 'SignatureDoesNotMatch' });
    expect(await ossError(client().getBucketInfo('no-such-bucket'))).toMatchObject({ code: 'NoSuchBucket', status: 404 });
  });

  it('takes the bucket from the Host header: an unknown bucket is NoSuchBucket', async () => {
    const sent = await captureRequest((c) => c.get('any'));
    expect(sent.headers.host).toBe(`${BUCKET}.oss-cn-hangzhou.aliyuncs.com`);
    expect(await ossError(client({ bucket: 'other-bucket' }).get('any'))).toMatchObject({ code: 'NoSuchBucket', status: 404 });
  });
});

describe('OSS test server: objects', () => {
  const body = randomBlob(5000, 7);

  it('puts, gets, heads and deletes an object with OSS ETag and crc64 headers', async () => {
    const put = await client().put('obj/a', body, { meta: { digest: 'sha256-x' } });
    expect(put.res.headers.etag).toBe(`"${md5Hex(body)}"`);
    expect(put.res.headers['x-oss-hash-crc64ecma']).toBe(crc64ecma(body));

    const got = await client().get('obj/a');
    expect(got.content.equals(body)).toBe(true);
    expect(got.res.headers['x-oss-hash-crc64ecma']).toBe(crc64ecma(body));

    const head = await client().head('obj/a');
    expect(head.status).toBe(200);
    expect(head.meta).toEqual({ digest: 'sha256-x' });
    expect(head.res.headers['content-length']).toBe('5000');
    expect(head.res.headers.etag).toBe(`"${md5Hex(body)}"`);
    expect(head.res.headers['x-oss-hash-crc64ecma']).toBe(crc64ecma(body));

    expect((await client().delete('obj/a')).res.status).toBe(204);
    expect(await ossError(client().get('obj/a'))).toMatchObject({ code: 'NoSuchKey', status: 404 });
    expect(await ossError(client().head('obj/a'))).toMatchObject({ code: 'NoSuchKey', status: 404 });
    expect((await client().delete('obj/a')).res.status).toBe(204);
  });

  it('takes a streamed upload of unknown length (chunked, no Content-MD5)', async () => {
    const sent = await captureRequest((c) => c.put('obj/stream', Readable.from([body.subarray(0, 1000), body.subarray(1000)])));
    expect(sent.headers['Transfer-Encoding']).toBe('chunked');
    await client().put('obj/stream', Readable.from([body.subarray(0, 1000), body.subarray(1000)]));
    expect(oss.objectBytes('obj/stream')?.equals(body)).toBe(true);
  });

  it('refuses to overwrite with x-oss-forbid-overwrite (409 FileAlreadyExists) and overwrites without it', async () => {
    await client().put('obj/once', Buffer.from('first'), { headers: { 'x-oss-forbid-overwrite': 'true' } });
    const refused = await ossError(client().put('obj/once', Buffer.from('second'), { headers: { 'x-oss-forbid-overwrite': 'true' } }));
    expect(refused).toMatchObject({ code: 'FileAlreadyExists', status: 409 });
    expect(oss.objectBytes('obj/once')?.toString()).toBe('first');
    await client().put('obj/once', Buffer.from('third'));
    expect(oss.objectBytes('obj/once')?.toString()).toBe('third');
  });

  it('refuses a body that does not match its Content-MD5', async () => {
    const wrongMd5 = createHash('md5').update('something else').digest('base64');
    expect(await ossError(client().put('obj/md5', Buffer.from('body'), { headers: { 'Content-MD5': wrongMd5 } }))).toMatchObject({ code: 'InvalidDigest', status: 400 });
    expect(oss.keys()).not.toContain('obj/md5');
  });

  it('answers ranges as OSS does: 206 for a valid range, 200 for a malformed or out-of-bounds one unless x-oss-range-behavior is standard', async () => {
    await client().put('obj/range', body);
    const ranged = async (range: string, standard = false) => {
      const { stream, res } = await client().getStream('obj/range', { headers: { Range: range, ...(standard ? { 'x-oss-range-behavior': 'standard' } : {}) } });
      return { status: res.status, range: res.headers['content-range'], bytes: hex((await readAll(stream)).bytes) };
    };
    expect(await ranged('bytes=10-19')).toEqual({ status: 206, range: 'bytes 10-19/5000', bytes: hex(body.subarray(10, 20)) });
    expect(await ranged('bytes=4990-')).toEqual({ status: 206, range: 'bytes 4990-4999/5000', bytes: hex(body.subarray(4990)) });
    expect(await ranged('bytes=-5')).toEqual({ status: 206, range: 'bytes 4995-4999/5000', bytes: hex(body.subarray(4995)) });
    expect(await ranged('bytes=0-9,20-29')).toMatchObject({ status: 206, bytes: hex(body.subarray(0, 10)) });
    for (const ignored of ['byte=0-9', 'bytes=abc', 'bytes=9-3', 'bytes=0-5000', 'bytes=5000-5001', 'bytes=-6000']) {
      expect(await ranged(ignored)).toEqual({ status: 200, range: undefined, bytes: hex(body) });
    }
    expect(await ranged('bytes=4000-9999', true)).toEqual({ status: 206, range: 'bytes 4000-4999/5000', bytes: hex(body.subarray(4000)) });
    expect(await ossError(ranged('bytes=5000-', true))).toMatchObject({ code: 'InvalidRange', status: 416 });
  });

  it('lists with prefix, max-keys and marker paging, and folds common prefixes with a delimiter', async () => {
    const keys = ['list/a/1', 'list/a/2', 'list/a/3', 'list/b/1', 'list/c', 'list/d'];
    for (const key of keys) await client().put(key, Buffer.from(key));
    const seen: string[] = [];
    let marker: string | undefined;
    let pages = 0;
    for (;;) {
      const page = await client().list({ prefix: 'list/', 'max-keys': 4, ...(marker === undefined ? {} : { marker }) });
      pages++;
      seen.push(...page.objects.map((o) => o.name));
      expect(page.objects.every((o) => o.size === o.name.length && o.etag === `"${md5Hex(Buffer.from(o.name))}"`)).toBe(true);
      if (!page.isTruncated) break;
      expect(page.nextMarker).toBe(seen.at(-1));
      marker = page.nextMarker!;
    }
    expect(seen).toEqual(keys);
    expect(pages).toBe(2);

    const folded = await client().list({ prefix: 'list/', delimiter: '/', 'max-keys': 3 });
    expect(folded.prefixes).toEqual(['list/a/', 'list/b/']);
    expect(folded.objects.map((o) => o.name)).toEqual(['list/c']);
    const rest = await client().list({ prefix: 'list/', delimiter: '/', marker: folded.nextMarker! });
    expect(rest.objects.map((o) => o.name)).toEqual(['list/d']);
    expect(rest.prefixes).toBeNull();
    expect(rest.isTruncated).toBe(false);
  });
});

describe('OSS test server: multipart uploads', () => {
  const part1 = randomBlob(100 * KIB, 11);
  const part2 = randomBlob(100 * KIB, 12);
  const last = randomBlob(10, 13);
  const FORBID = { headers: { 'x-oss-forbid-overwrite': 'true' } };

  async function uploadParts(key: string, parts: Buffer[]): Promise<{ uploadId: string; etags: { number: number; etag: string }[] }> {
    const { uploadId } = await client().initMultipartUpload(key);
    const etags = [];
    for (const [i, part] of parts.entries()) {
      const uploaded = await client().uploadPart(key, uploadId, i + 1, part, 0, part.length);
      expect(uploaded.etag).toBe(`"${md5Hex(part)}"`);
      expect(uploaded.res.headers['x-oss-hash-crc64ecma']).toBe(crc64ecma(part));
      etags.push({ number: i + 1, etag: uploaded.etag });
    }
    return { uploadId, etags };
  }

  it('completes an upload into one object with the multipart ETag and the crc64 of the whole', async () => {
    const { uploadId, etags } = await uploadParts('mp/ok', [part1, part2, last]);
    const listed = await client().listParts('mp/ok', uploadId);
    expect([listed.parts].flat().map((p) => [p.PartNumber, p.ETag, p.Size])).toEqual(etags.map((e, i) => [String(e.number), e.etag, String([part1, part2, last][i]!.length)]));

    const done = await client().completeMultipartUpload('mp/ok', uploadId, etags, FORBID);
    const whole = Buffer.concat([part1, part2, last]);
    const md5s = Buffer.concat([part1, part2, last].map((p) => createHash('md5').update(p).digest()));
    expect(done.etag).toBe(`"${md5Hex(md5s)}-3"`);
    expect(done.res.headers['x-oss-hash-crc64ecma']).toBe(crc64ecma(whole));
    expect((await client().get('mp/ok')).content.equals(whole)).toBe(true);
    expect((await client().head('mp/ok')).res.headers['x-oss-object-type']).toBe('Multipart');
    expect(oss.openUploads().map((u) => u.uploadId)).not.toContain(uploadId);
    expect(await ossError(client().listParts('mp/ok', uploadId))).toMatchObject({ code: 'NoSuchUpload', status: 404 });
  });

  it('keeps an uncompleted upload invisible: its key is no object', async () => {
    const { uploadId } = await uploadParts('mp/pending', [part1]);
    expect(await ossError(client().get('mp/pending'))).toMatchObject({ code: 'NoSuchKey', status: 404 });
    expect(await ossError(client().head('mp/pending'))).toMatchObject({ code: 'NoSuchKey' });
    expect((await client().list({ prefix: 'mp/pending' })).objects).toEqual([]);
    expect(oss.openUploads()).toContainEqual({ key: 'mp/pending', uploadId, parts: [1] });
    await client().abortMultipartUpload('mp/pending', uploadId);
  });

  it('refuses a part under 100 KiB that is not the last (EntityTooSmall) and leaves the upload open', async () => {
    const { uploadId, etags } = await uploadParts('mp/small', [part1.subarray(0, 100 * KIB - 1), last]);
    expect(await ossError(client().completeMultipartUpload('mp/small', uploadId, etags))).toMatchObject({ code: 'EntityTooSmall', status: 400 });
    expect(oss.keys()).not.toContain('mp/small');
    expect(oss.openUploads().map((u) => u.uploadId)).toContain(uploadId);
  });

  it('refuses a part list with a wrong ETag (InvalidPart) or out of order (InvalidPartOrder)', async () => {
    const { uploadId, etags } = await uploadParts('mp/parts', [part1, part2]);
    const wrong = [etags[0]!, { number: 2, etag: `"${md5Hex(part1)}"` }];
    expect(await ossError(client().completeMultipartUpload('mp/parts', uploadId, wrong))).toMatchObject({ code: 'InvalidPart', status: 400 });
    expect(await ossError(client().completeMultipartUpload('mp/parts', uploadId, [...etags, { number: 3, etag: etags[0]!.etag }]))).toMatchObject({ code: 'InvalidPart' });
    // ali-oss sorts the parts itself, so the unsorted list goes through its signed request path directly.
    const unsorted = `<CompleteMultipartUpload>${[...etags].reverse().map((e) => `<Part><PartNumber>${e.number}</PartNumber><ETag>${e.etag}</ETag></Part>`).join('')}</CompleteMultipartUpload>`;
    const request = client().request({ method: 'POST', bucket: BUCKET, object: 'mp/parts', subres: { uploadId }, content: unsorted, mime: 'xml', successStatuses: [200] });
    expect(await ossError(request)).toMatchObject({ code: 'InvalidPartOrder', status: 400 });
    expect(await ossError(client().uploadPart('mp/parts', uploadId, 10001, last, 0, last.length))).toMatchObject({ code: 'InvalidArgument', status: 400 });
    expect(await ossError(client().uploadPart('mp/parts', 'NOSUCHUPLOAD', 1, last, 0, last.length))).toMatchObject({ code: 'NoSuchUpload', status: 404 });
    expect(await ossError(client().uploadPart('mp/elsewhere', uploadId, 1, last, 0, last.length))).toMatchObject({ code: 'NoSuchUpload' });
    expect(oss.keys()).not.toContain('mp/parts');
  });

  it('answers 409 FileAlreadyExists to a complete with forbid-overwrite over an object; the upload stays listable and abortable', async () => {
    await client().put('mp/taken', Buffer.from('first writer'));
    const { uploadId, etags } = await uploadParts('mp/taken', [part1, last]);
    expect(await ossError(client().completeMultipartUpload('mp/taken', uploadId, etags, FORBID))).toMatchObject({ code: 'FileAlreadyExists', status: 409 });
    expect(oss.objectBytes('mp/taken')?.toString()).toBe('first writer');
    expect((await client().listUploads({ prefix: 'mp/taken' })).uploads.map((u) => [u.name, u.uploadId])).toEqual([['mp/taken', uploadId]]);
    expect([(await client().listParts('mp/taken', uploadId)).parts].flat()).toHaveLength(2);

    expect((await client().abortMultipartUpload('mp/taken', uploadId)).res.status).toBe(204);
    expect(oss.openUploads().filter((u) => u.key === 'mp/taken')).toEqual([]);
    expect(await ossError(client().abortMultipartUpload('mp/taken', uploadId))).toMatchObject({ code: 'NoSuchUpload', status: 404 });
    expect(await ossError(client().completeMultipartUpload('mp/taken', uploadId, etags))).toMatchObject({ code: 'NoSuchUpload' });
  });

  it('lets exactly one of two uploads racing to the same key with forbid-overwrite commit; the other gets 409', async () => {
    const a = await uploadParts('mp/race', [part1, last]);
    const b = await uploadParts('mp/race', [part2, last]);
    const [first, second] = await Promise.allSettled([
      client().completeMultipartUpload('mp/race', a.uploadId, a.etags, FORBID),
      client().completeMultipartUpload('mp/race', b.uploadId, b.etags, FORBID),
    ]);
    const outcomes = [first, second].map((o) => (o.status === 'fulfilled' ? 'committed' : (o.reason as { code: string }).code));
    expect(outcomes.sort()).toEqual(['FileAlreadyExists', 'committed']);
    const winner = first.status === 'fulfilled' ? part1 : part2;
    expect(oss.objectBytes('mp/race')?.equals(Buffer.concat([winner, last]))).toBe(true);
    const loser = first.status === 'fulfilled' ? b : a;
    expect(oss.openUploads().map((u) => u.uploadId)).toContain(loser.uploadId);
    await client().abortMultipartUpload('mp/race', loser.uploadId);
  });

  it('refuses to initiate over an existing object with forbid-overwrite', async () => {
    await client().put('mp/exists', Buffer.from('x'));
    expect(await ossError(client().initMultipartUpload('mp/exists', FORBID))).toMatchObject({ code: 'FileAlreadyExists', status: 409 });
  });
});

describe('OSS test server: presigned URLs', () => {
  const presigner = () => client({ endpoint: oss.cnameEndpoint, cname: true });
  const fetchUrl = (url: string) => {
    const u = new URL(url);
    return rawRequest('GET', u.pathname + u.search, { host: u.host });
  };

  it('serves a signatureUrl until it expires, and refuses one whose path or signed query was changed', async () => {
    await client().put('pre/obj', Buffer.from('presigned body'));
    const url = presigner().signatureUrl('pre/obj', { expires: 60, response: { 'content-disposition': 'attachment' } });
    expect(new URL(url).host).toBe(`localhost:${oss.port}`);
    const ok = await fetchUrl(url);
    expect(ok).toMatchObject({ status: 200, body: 'presigned body' });
    expect(ok.headers['content-disposition']).toBe('attachment');

    expect((await fetchUrl(url.replace('/pre/obj', '/pre/other'))).body).toContain('<Code>SignatureDoesNotMatch</Code>');
    expect((await fetchUrl(url.replace('attachment', 'inline'))).body).toContain('<Code>SignatureDoesNotMatch</Code>');
    expect((await fetchUrl(`${url}&response-content-type=text%2Fhtml`)).body).toContain('<Code>SignatureDoesNotMatch</Code>');
    expect((await fetchUrl(client({ endpoint: oss.cnameEndpoint, cname: true, accessKeySecret: 'wrong' }).signatureUrl('pre/obj'))).status).toBe(403);

    oss.now = () => Date.now() + 61_000;
    const expired = await fetchUrl(url);
    expect(expired.status).toBe(403);
    expect(expired.body).toMatch(/<Code>AccessDenied<\/Code><Message>Request has expired\.<\/Message>/);
  });

  it('also answers ali-oss requests sent with cname: true to localhost', async () => {
    await presigner().put('pre/cname', Buffer.from('via cname'));
    expect(oss.objectBytes('pre/cname')?.toString()).toBe('via cname');
  });
});

describe('OSS test server: crc64', () => {
  /** Bit-at-a-time CRC-64/XZ (ECMA-182 reflected), the definition the table-driven crc64ecma must agree with. */
  function crc64Reference(bytes: Buffer): string {
    let crc = 0xffffffffffffffffn;
    for (const byte of bytes) {
      crc ^= BigInt(byte);
      for (let bit = 0; bit < 8; bit++) crc = crc & 1n ? (crc >> 1n) ^ 0xc96c5795d7870f42n : crc >> 1n;
    }
    return (crc ^ 0xffffffffffffffffn).toString();
  }

  it('computes CRC-64/ECMA-182 as OSS does (check value of "123456789") on any input', () => {
    expect(crc64ecma(Buffer.from('123456789'))).toBe(BigInt('0x995DC9BBDF1939FA').toString());
    expect(crc64ecma(Buffer.alloc(0))).toBe('0');
    const sample = randomBlob(3001, 5);
    expect(crc64ecma(sample)).toBe(crc64Reference(sample));
    expect(crc64ecma(sample.subarray(0, 1000), sample.subarray(1000))).toBe(crc64Reference(sample));
  });
});

describe('OSS test server: fault switches', () => {
  it('answers 500 InternalError to the next requests that match, then carries them out again; counts requests by operation', async () => {
    const part = randomBlob(100 * KIB, 21);
    const { uploadId } = await client().initMultipartUpload('fault/mp');
    const uploadsBefore = oss.faults.count('UploadPart');
    oss.faults.failNext(1, (r) => r.operation === 'UploadPart' && r.key === 'fault/mp' && r.partNumber === 2);
    await client().uploadPart('fault/mp', uploadId, 1, part, 0, part.length);
    expect(await ossError(client().uploadPart('fault/mp', uploadId, 2, part, 0, part.length))).toMatchObject({ code: 'InternalError', status: 500 });
    expect(oss.openUploads().find((u) => u.uploadId === uploadId)?.parts).toEqual([1]);
    await client().uploadPart('fault/mp', uploadId, 2, part, 0, part.length);
    expect(oss.openUploads().find((u) => u.uploadId === uploadId)?.parts).toEqual([1, 2]);
    expect(oss.faults.count('UploadPart') - uploadsBefore).toBe(3);
    await client().abortMultipartUpload('fault/mp', uploadId);

    await client().put('fault/obj', Buffer.from('x'));
    const getsBefore = oss.faults.count('GetObject');
    oss.faults.failNext(2, (r) => r.operation === 'GetObject');
    await client().head('fault/obj');
    expect(await ossError(client().get('fault/obj'))).toMatchObject({ code: 'InternalError' });
    expect(await ossError(client().get('fault/obj'))).toMatchObject({ code: 'InternalError' });
    expect((await client().get('fault/obj')).content.toString()).toBe('x');
    expect(oss.faults.count('GetObject') - getsBefore).toBe(3);
  });

  it('resets a GET connection after a set number of body bytes', async () => {
    const body = randomBlob(256 * KIB, 22);
    await client().put('fault/reset', body);
    oss.faults.resetGetAfter(64 * KIB, 1, (r) => r.key === 'fault/reset');
    const { stream, res } = await client().getStream('fault/reset');
    expect(res.status).toBe(200);
    const cut = await readAll(stream);
    expect(cut.error).not.toBeNull();
    expect(cut.bytes.length).toBeLessThanOrEqual(64 * KIB);
    expect(cut.bytes.equals(body.subarray(0, cut.bytes.length))).toBe(true);
    const whole = await readAll((await client().getStream('fault/reset')).stream);
    expect(whole.error).toBeNull();
    expect(whole.bytes.equals(body)).toBe(true);
  });

  it('throttles GET bodies to a number of bytes per second', async () => {
    const body = randomBlob(40 * KIB, 23);
    await client().put('fault/slow', body);
    oss.faults.bytesPerSecond = 80 * KIB;
    const started = performance.now();
    const slow = await readAll((await client().getStream('fault/slow', { headers: { Range: 'bytes=0-32767' } })).stream);
    expect(performance.now() - started).toBeGreaterThanOrEqual(350);
    expect(slow.bytes.equals(body.subarray(0, 32 * KIB))).toBe(true);
    oss.faults.bytesPerSecond = null;
    const fastStarted = performance.now();
    await client().get('fault/slow');
    expect(performance.now() - fastStarted).toBeLessThan(350);
  });
});
