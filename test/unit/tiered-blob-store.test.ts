import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlobInfo, BlobStore } from '../../src/cache/blob-store.js';
import type { TieredBlobStore } from '../../src/cache/tiered-blob-store.js';
import { eventually } from '../support/eventually.js';
import { fillOf, gatedSource, verified } from '../support/gated-source.js';
import { randomBlob, sha256 } from '../support/fake-upstream.js';
import { TEST_PART_SIZE } from '../support/oss-store.js';
import { keyOf, localFile, tieredStoreFixture, type TieredStoreFixture } from '../support/tiered-store.js';

let t: TieredStoreFixture;
beforeEach(async () => {
  t = await tieredStoreFixture();
});
afterEach(() => t.cleanup());


async function put(store: BlobStore, blob: Buffer): Promise<string> {
  const writer = await store.createWriter(sha256(blob));
  await writer.write(0, blob);
  await writer.commit(verified(blob));
  await writer.close();
  return sha256(blob);
}

async function readAll(store: BlobStore, digest: string, range?: { start: number; end: number }): Promise<Buffer | null> {
  const reader = await store.open(digest);
  if (!reader) return null;
  const parts: Buffer[] = [];
  for await (const chunk of reader.stream(range)) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

/** A second replica: an empty cache directory in front of the same bucket. */
async function freshReplica(): Promise<{ store: TieredBlobStore; dir: string; commits: BlobInfo[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'acr-tiered-replica-'));
  const store = t.newStore({ dir });
  await store.prepare();
  const commits: BlobInfo[] = [];
  store.on('commit', (b) => commits.push(b));
  return { store, dir, commits };
}

describe('TieredBlobStore: the local disk in front of the bucket', () => {
  it('writes a fill to the disk once (the upload reads the same file) and commits it to the bucket, then to the disk', async () => {
    const blob = randomBlob(20 * TEST_PART_SIZE + 321, 51);
    const digest = sha256(blob);
    const source = gatedSource(blob, blob.length - 1000);
    const fill = fillOf(digest, source, t.store);
    const running = fill.run();
    await eventually(() => expect(t.f.oss.openUploads()[0]?.parts.length).toBeGreaterThanOrEqual(5));
    // One temp file: the bucket upload's spool is the local copy's file.
    expect(await t.diskFiles()).toEqual([expect.stringMatching(/^tmp\/sha256-[0-9a-f]{64}\.[0-9a-f]{12}$/)]);
    source.release();
    await running;
    expect(fill.committed).toBe(true);
    expect(t.f.oss.objectBytes(keyOf(digest))?.equals(blob)).toBe(true);
    expect(t.f.bucketResidue()).toEqual([keyOf(digest)]);
    expect(await t.diskFiles()).toEqual([localFile(digest)]);
    expect((await readFile(join(t.layout.root, localFile(digest)))).equals(blob)).toBe(true);
  });

  it('commits neither the bucket nor the disk when a fill does not match its digest, and completes no upload', async () => {
    const blob = randomBlob(20 * TEST_PART_SIZE + 7, 52);
    const claimed = sha256(randomBlob(20 * TEST_PART_SIZE + 7, 53));
    const fill = fillOf(claimed, gatedSource(blob), t.store);
    await fill.run();
    expect(fill.state).toBe('failed');
    expect(t.f.oss.faults.count('UploadPart')).toBeGreaterThan(0);
    expect(t.f.oss.faults.count('CompleteMultipartUpload')).toBe(0);
    await eventually(() => expect(t.f.bucketResidue()).toEqual([]));
    await eventually(async () => expect(await t.diskFiles()).toEqual([]));
  });

  it('serves a blob on the disk without asking the bucket', async () => {
    const blob = randomBlob(300 * 1024, 54);
    const digest = await put(t.store, blob);
    const requests = () => ['HeadObject', 'GetObject'].map((op) => t.f.oss.faults.count(op as 'GetObject'));
    const before = requests();
    expect(await t.store.stat(digest)).toEqual({ size: blob.length });
    expect((await readAll(t.store, digest))!.equals(blob)).toBe(true);
    expect((await readAll(t.store, digest, { start: 5, end: 99_999 }))!.equals(blob.subarray(5, 100_000))).toBe(true);
    expect(requests()).toEqual(before);
  });

  it('streams a blob only in the bucket and keeps a verified local copy, copied once however many read it at once', async () => {
    const blob = randomBlob(700 * 1024, 55);
    const digest = await put(t.store, blob);
    const replica = await freshReplica();
    try {
      expect(await replica.store.stat(digest)).toEqual({ size: blob.length });
      const gets = t.f.oss.faults.count('GetObject');
      const reads = await Promise.all([readAll(replica.store, digest), readAll(replica.store, digest)]);
      for (const bytes of reads) expect(bytes!.equals(blob)).toBe(true);
      expect(t.f.oss.faults.count('GetObject') - gets).toBe(2);
      await eventually(() => expect(replica.commits).toEqual([{ digest, size: blob.length }]));
      const copy = await readFile(join(replica.dir, localFile(digest)));
      expect(copy.equals(blob)).toBe(true);
      // Now a disk hit: the bucket is not asked again.
      expect((await readAll(replica.store, digest))!.equals(blob)).toBe(true);
      expect(t.f.oss.faults.count('GetObject') - gets).toBe(2);
    } finally {
      await replica.store.copiesEnded();
      await rm(replica.dir, { recursive: true, force: true });
    }
  });

  it('reserves a copy\'s size against storage.max_size first: without room it serves from the bucket and keeps nothing', async () => {
    const blob = randomBlob(300 * 1024, 65);
    const digest = await put(t.store, blob);
    const replica = await freshReplica();
    const asked: number[] = [];
    let released = 0;
    let room = false;
    replica.store.reserveCopiesIn({ reserve: async (size) => (asked.push(size), room ? () => void released++ : null) });
    try {
      expect((await readAll(replica.store, digest))!.equals(blob)).toBe(true);
      await replica.store.copiesEnded();
      expect(asked).toEqual([blob.length]);
      expect(replica.commits).toEqual([]);
      expect(await readdir(join(replica.dir, 'tmp'))).toEqual([]);
      room = true;
      expect((await readAll(replica.store, digest))!.equals(blob)).toBe(true);
      await replica.store.copiesEnded();
      expect(replica.commits).toEqual([{ digest, size: blob.length }]);
      expect(released).toBe(1);
    } finally {
      await replica.store.copiesEnded();
      await rm(replica.dir, { recursive: true, force: true });
    }
  });

  it('keeps no local copy of a bucket object whose bytes do not match its digest, and logs it as an error', async () => {
    const blob = randomBlob(300 * 1024, 56);
    const digest = await put(t.store, blob);
    const wrong = randomBlob(300 * 1024, 57);
    await t.f.client.put(keyOf(digest), wrong);
    const replica = await freshReplica();
    try {
      expect((await readAll(replica.store, digest))!.equals(wrong)).toBe(true);
      await eventually(() => expect(t.logged.some((l) => l.msg.includes('does not match its digest'))).toBe(true));
      const line = t.logged.find((l) => l.msg.includes('does not match its digest'))!;
      expect(line).toMatchObject({ level: 50, digest, actual: sha256(wrong) });
      expect(replica.commits).toEqual([]);
      await eventually(async () => expect(await replica.store.local.stat(digest)).toBeNull());
      const listed: string[] = [];
      for await (const b of replica.store.list()) listed.push(b.digest);
      expect(listed).toEqual([]);
      expect(await readdir(join(replica.dir, 'tmp'))).toEqual([]);
    } finally {
      await replica.store.copiesEnded();
      await rm(replica.dir, { recursive: true, force: true });
    }
  });

  it('deletes only the local copy: eviction and gc never delete from the bucket', async () => {
    const blob = randomBlob(200 * 1024, 58);
    const digest = await put(t.store, blob);
    const deleted: string[] = [];
    t.store.on('delete', (d) => deleted.push(d));
    expect(await t.store.delete(digest)).toBe(true);
    expect(deleted).toEqual([digest]);
    expect(await t.diskFiles()).toEqual([]);
    expect(t.f.oss.faults.count('DeleteObject')).toBe(0);
    expect(t.f.oss.objectBytes(keyOf(digest))?.equals(blob)).toBe(true);
    expect(await t.store.leftovers(Date.now() + 60_000)).toEqual([]);
  });

  it('gives gc the disk\'s stale temp files and the bucket\'s dead uploads as leftovers, never walking the bucket\'s objects', async () => {
    await put(t.store, randomBlob(150 * 1024, 63));
    const key = keyOf(sha256(randomBlob(10, 64)));
    const { uploadId } = await t.f.client.initMultipartUpload(key);
    await t.f.client.uploadPart(key, uploadId, 1, Buffer.alloc(300), 0, 300);
    t.f.oss.backdateUpload(uploadId, new Date(Date.now() - 2 * 86_400_000));
    await writeFile(join(t.layout.tmp, 'sha256-crashed'), Buffer.alloc(400));
    const leftovers = await t.store.leftovers(Date.now() + 60_000);
    expect(leftovers.map((l) => l.size).sort()).toEqual([300, 400]);
    await t.store.removeLeftovers(leftovers);
    expect(t.f.oss.openUploads()).toEqual([]);
    expect(await t.diskFiles()).toHaveLength(1);
    expect(t.f.oss.faults.count('ListObjects')).toBe(0);
    let listed = 0;
    for await (const _ of t.store.list()) listed++;
    expect(listed).toBe(1);
    expect(t.f.oss.faults.count('ListObjects')).toBe(0);
  });

  it('writes the disk only for a digest shareWrites() declines', async () => {
    const shared = randomBlob(150 * 1024, 59);
    const own = randomBlob(150 * 1024, 60);
    const store = t.newStore({ shareWrites: (digest) => digest === sha256(shared) });
    await put(store, shared);
    await put(store, own);
    expect(t.f.bucketResidue()).toEqual([keyOf(sha256(shared))]);
    expect((await t.diskFiles()).sort()).toEqual([localFile(sha256(shared)), localFile(sha256(own))].sort());
  });

  it('uploads the whole blob, bytes written before included, once shareWriter() is called for a writer shareWrites() declined', async () => {
    const blob = randomBlob(11 * TEST_PART_SIZE + 500, 63);
    const digest = sha256(blob);
    const store = t.newStore({ shareWrites: () => false });
    const writer = await store.createWriter(digest);
    const spooled = 8 * TEST_PART_SIZE + 100;
    await writer.write(0, blob.subarray(0, spooled));
    expect(t.f.bucketResidue()).toEqual([]);
    store.shareWriter(digest);
    await writer.write(spooled, blob.subarray(spooled));
    await writer.commit(verified(blob));
    await writer.close();
    expect(t.f.bucketResidue()).toEqual([keyOf(digest)]);
    expect(t.f.oss.objectBytes(keyOf(digest))?.equals(blob)).toBe(true);
    expect(await t.diskFiles()).toEqual([localFile(digest)]);
  });

  it('presigns a link only for a blob in the bucket', async () => {
    const inBucket = await put(t.store, randomBlob(1000, 61));
    const onDiskOnly = await put(t.newStore({ shareWrites: () => false }), randomBlob(1000, 62));
    expect(await t.store.presignedUrl(inBucket, 60_000)).toMatch(new RegExp(`/${keyOf(inBucket)}\\?OSSAccessKeyId=store-ak&Expires=\\d+&Signature=`));
    expect(await t.store.presignedUrl(onDiskOnly, 60_000)).toBeNull();
  });
});
