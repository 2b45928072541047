import { createServer, request as httpRequest } from 'node:http';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlobStore } from '../../src/cache/blob-store.js';
import { openBlobStore, openCacheDatabase } from '../../src/cache/cache.js';
import { FsBlobStore } from '../../src/cache/fs-blob-store.js';
import { OssStoreError } from '../../src/cache/oss-client.js';
import { TieredBlobStore } from '../../src/cache/tiered-blob-store.js';
import { parseConfig } from '../../src/config/load.js';
import { eventually } from '../support/eventually.js';
import { fillOf, gatedSource, verified } from '../support/gated-source.js';
import { randomBlob, sha256 } from '../support/fake-upstream.js';
import { OSS_BUCKET, OSS_PREFIX, ossStoreFixture, type OssStoreFixture, TEST_PART_SIZE } from '../support/oss-store.js';

let f: OssStoreFixture;
beforeEach(async () => {
  f = await ossStoreFixture();
});
afterEach(() => f.cleanup());

const keyOf = (digest: string) => `${OSS_PREFIX}blobs/sha256/${digest.slice(7)}`;

/** What a consumer of a store reader's sendTo() got, and whether the response was ended or destroyed. */
async function sendAll(store: BlobStore, digest: string): Promise<{ bytes: Buffer; ended: boolean }> {
  const chunks: Buffer[] = [];
  const out = new Writable({ write: (c: Buffer, _e, cb) => void (chunks.push(Buffer.from(c)), cb()) });
  (await store.open(digest))!.sendTo(out, undefined, () => {});
  // Not events.once: it rejects on the 'error' a broken-off body destroys the response with.
  await new Promise((resolve) => out.on('error', () => {}).on('close', resolve));
  return { bytes: Buffer.concat(chunks), ended: out.writableFinished };
}

describe('OssBlobStore with a fill', () => {
  it('uploads a multi-part blob part by part as it arrives and completes the upload only once the digest matched', async () => {
    const blob = randomBlob(40 * TEST_PART_SIZE + 12_345, 31);
    const digest = sha256(blob);
    const source = gatedSource(blob, blob.length - 1000);
    const fill = fillOf(digest, source, f.store);
    const running = fill.run();
    // Held back before the last 1000 bytes: parts are up, the upload is open, no object yet.
    // 30 parts: the fill's third 1 MiB write has begun, so its memory no longer holds the first MiB.
    await eventually(() => expect(f.oss.openUploads()[0]?.parts.length).toBeGreaterThanOrEqual(30));
    expect(f.oss.keys()).toEqual([]);
    expect(f.oss.faults.count('CompleteMultipartUpload')).toBe(0);
    // A reader joining now is past the fill's memory window: it reads the first bytes back from the writer's spool.
    const late = fill.reader();
    const lateBytes = (async () => {
      const chunks: Buffer[] = [];
      for await (const c of late) chunks.push(c as Buffer);
      return Buffer.concat(chunks);
    })();
    source.release();
    await running;
    expect((await lateBytes).equals(blob)).toBe(true);
    expect(fill.committed).toBe(true);
    expect(f.oss.objectBytes(keyOf(digest))?.equals(blob)).toBe(true);
    expect(f.oss.faults.count('CompleteMultipartUpload')).toBe(1);
    expect(f.oss.faults.count('UploadPart')).toBe(41);
    expect(f.bucketResidue()).toEqual([keyOf(digest)]);
    expect((await sendAll(f.store, digest)).bytes.equals(blob)).toBe(true);
    await eventually(async () => expect(await f.spoolFiles()).toEqual([]));
  });

  it('completes nothing and leaves no open upload when the bytes do not match the digest', async () => {
    // Over the fill's 1 MiB write batch, so that parts are uploaded before the end shows the mismatch.
    const blob = randomBlob(20 * TEST_PART_SIZE + 7, 32);
    const claimed = sha256(randomBlob(20 * TEST_PART_SIZE + 7, 33));
    const fill = fillOf(claimed, gatedSource(blob), f.store);
    await fill.run();
    expect(fill.state).toBe('failed');
    expect(fill.error?.message).toMatch(/does not match its digest/);
    expect(f.oss.faults.count('UploadPart')).toBeGreaterThan(0);
    expect(f.oss.faults.count('CompleteMultipartUpload')).toBe(0);
    await eventually(() => expect(f.bucketResidue()).toEqual([]));
    await eventually(async () => expect(await f.spoolFiles()).toEqual([]));
  });

  it('retries a part upload that got a 5xx, and commits the blob', async () => {
    const blob = randomBlob(4 * TEST_PART_SIZE + 99, 34);
    const digest = sha256(blob);
    f.oss.faults.failNext(1, (r) => r.operation === 'UploadPart' && r.partNumber === 2);
    const fill = fillOf(digest, gatedSource(blob), f.store);
    await fill.run();
    expect(fill.committed).toBe(true);
    expect(f.oss.faults.count('UploadPart')).toBe(6);
    expect(f.oss.objectBytes(keyOf(digest))?.equals(blob)).toBe(true);
    expect(f.bucketResidue()).toEqual([keyOf(digest)]);
  });

  it('fails the fill cleanly, with no upload left open, when a part keeps failing', async () => {
    const blob = randomBlob(4 * TEST_PART_SIZE + 99, 35);
    f.oss.faults.failNext(100, (r) => r.operation === 'UploadPart' && r.partNumber === 3);
    const fill = fillOf(sha256(blob), gatedSource(blob), f.store);
    await fill.run();
    expect(fill.state).toBe('failed');
    expect(fill.error).toBeInstanceOf(OssStoreError);
    expect(fill.error?.message).toMatch(new RegExp(`UploadPart ${OSS_BUCKET}/.*InternalError \\(HTTP 500\\).*request id [0-9A-F]{24}`));
    expect(f.oss.faults.count('CompleteMultipartUpload')).toBe(0);
    await eventually(() => expect(f.bucketResidue()).toEqual([]));
  });
});

describe('OssBlobStore', () => {
  it('cuts a client short, with only right bytes, when the GET breaks off mid-body', async () => {
    const blob = randomBlob(600 * 1024, 36);
    const digest = sha256(blob);
    const writer = await f.store.createWriter(digest);
    await writer.write(0, blob);
    await writer.commit(verified(blob));
    await writer.close();
    f.oss.faults.resetGetAfter(200 * 1024, 1);
    const cut = await sendAll(f.store, digest);
    expect(cut.ended).toBe(false);
    expect(cut.bytes.length).toBeLessThan(blob.length);
    expect(cut.bytes.equals(blob.subarray(0, cut.bytes.length))).toBe(true);
    await eventually(() => expect(f.store.inUse(digest)).toBe(false));
    expect((await sendAll(f.store, digest)).bytes.equals(blob)).toBe(true);
  });

  it('breaks a GET off whose body stalls for the timeout', async () => {
    // Not the OSS test server (it never stalls): a server that answers HEAD and sends 1000 of the bytes of a GET.
    const stalling = createServer((req, res) => {
      res.writeHead(req.method === 'HEAD' ? 200 : 206, { 'content-length': '5000', ...(req.method === 'HEAD' ? {} : { 'content-range': 'bytes 0-4999/5000' }) });
      if (req.method === 'HEAD') res.end();
      else res.write(Buffer.alloc(1000));
    });
    await new Promise<void>((resolve) => stalling.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = stalling.address() as { port: number };
      const store = f.newStore({ endpoint: `http://127.0.0.1:${port}`, cname: false, timeoutMs: 300 });
      const stream = (await store.open(`sha256:${'1'.repeat(64)}`))!.stream();
      let received = 0;
      const failure = await (async () => {
        for await (const c of stream) received += (c as Buffer).length;
      })().then(() => null, (e: Error) => e.message);
      expect(received).toBe(1000);
      expect(failure).toMatch(/no bytes for 300 ms/);
    } finally {
      stalling.closeAllConnections();
      stalling.close();
    }
  });

  it('lets two writers of one digest finish: one completes, the other gets 409 and aborts its upload', async () => {
    const blob = randomBlob(3 * TEST_PART_SIZE + 5, 37);
    const digest = sha256(blob);
    const other = f.newStore(); // another replica on the same bucket
    const writers = [await f.store.createWriter(digest), await other.createWriter(digest)];
    for (const w of writers) await w.write(0, blob);
    await writers[0]!.commit(verified(blob));
    await writers[1]!.commit(verified(blob));
    await Promise.all(writers.map((w) => w.close()));
    expect(f.oss.faults.count('CompleteMultipartUpload')).toBe(2);
    expect(f.oss.faults.count('AbortMultipartUpload')).toBe(1);
    expect(f.oss.objectBytes(keyOf(digest))?.equals(blob)).toBe(true);
    expect(f.bucketResidue()).toEqual([keyOf(digest)]);
  });

  it('never reports its own writer\'s upload as a leftover, and aborts it when the writer is closed uncommitted', async () => {
    const blob = randomBlob(2 * TEST_PART_SIZE, 38);
    const writer = await f.store.createWriter(sha256(blob));
    await writer.write(0, blob);
    await eventually(() => expect(f.oss.openUploads()[0]?.parts).toEqual([1, 2]));
    expect(await f.store.leftovers(Date.now() + 60_000)).toEqual([]);
    expect((await f.newStore().leftovers(Date.now() + 60_000)).map((l) => l.size)).toEqual([2 * TEST_PART_SIZE]);
    await writer.close();
    expect(f.bucketResidue()).toEqual([]);
    expect(await f.spoolFiles()).toEqual([]);
  });

  it('fails probe() with wrong credentials naming the bucket and the OSS code, never the secret or a signature', async () => {
    await f.store.probe();
    const wrong = f.newStore({ accessKeySecret: 'not-the-store-secret' });
    const err = await wrong.probe().then(() => null, (e: unknown) => e as OssStoreError);
    expect(err).toBeInstanceOf(OssStoreError);
    expect(err).toMatchObject({ code: 'SignatureDoesNotMatch', status: 403, bucket: OSS_BUCKET });
    expect(err!.message).toMatch(new RegExp(`GetBucketInfo bucket ${OSS_BUCKET} failed: SignatureDoesNotMatch \\(HTTP 403\\)`));
    expect(err!.requestId).toMatch(/^[0-9A-F]{24}$/);
    const everything = JSON.stringify({ ...err, message: err!.message, stack: err!.stack, cause: String(err!.cause) });
    expect(everything).not.toContain('not-the-store-secret');
    expect(everything).not.toMatch(/OSS store-ak:|Signature=|StringToSign/);
    expect(await f.newStore({ bucket: 'no-such-bucket', endpoint: f.oss.endpoint, cname: false }).probe().catch((e: Error) => e.message)).toMatch(/bucket no-such-bucket failed: NoSuchBucket/);
  });

  it('gives a presigned URL that serves the blob until it expires', async () => {
    const blob = randomBlob(1000, 39);
    const digest = sha256(blob);
    const writer = await f.store.createWriter(digest);
    await writer.write(0, blob);
    await writer.commit(verified(blob));
    await writer.close();
    const url = new URL((await f.store.presignedUrl(digest, 60_000))!);
    const get = () =>
      new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
        httpRequest({ host: '127.0.0.1', port: f.oss.port, path: url.pathname + url.search, headers: { host: url.host } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks) }));
        }).on('error', reject).end();
      });
    const ok = await get();
    expect(ok.status).toBe(200);
    expect(ok.body.equals(blob)).toBe(true);
    f.oss.now = () => Date.now() + 61_000;
    expect((await get()).status).toBe(403);
  });
});

describe('storage.backend = "oss"', () => {
  it('opens the local disk in front of the bucket and prefix configured, the blobs table following the local commits', async () => {
    const storage = { backend: 'oss', dir: f.tmpDir, oss: { bucket: OSS_BUCKET, endpoint: f.oss.endpoint, prefix: 'from-config/', part_size: '100KiB' } };
    const config = parseConfig({ storage }, { env: { ALIBABA_CLOUD_ACCESS_KEY_ID: 'store-ak', ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'store-secret' }, baseDir: '/', source: 'test' });
    const db = await openCacheDatabase(config.storage.dir);
    try {
      const { store, index } = openBlobStore(config.storage.dir, db, Date.now, config.storage.oss);
      expect(store).toBeInstanceOf(TieredBlobStore);
      await store.prepare();
      await store.probe();
      const blob = randomBlob(250 * 1024, 40);
      const writer = await store.createWriter(sha256(blob));
      await writer.write(0, blob);
      await writer.commit(verified(blob));
      await writer.close();
      expect(f.oss.keys()).toEqual([`from-config/blobs/sha256/${sha256(blob).slice(7)}`]);
      expect(f.oss.faults.count('UploadPart')).toBe(3);
      expect(index.totals()).toEqual({ blobs: 1, bytes: blob.length });
      expect(openBlobStore(config.storage.dir, db, Date.now).store).toBeInstanceOf(FsBlobStore);
    } finally {
      db.close();
    }
  });
});
