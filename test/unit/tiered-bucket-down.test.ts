import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BUCKET_REST_MS } from '../../src/cache/bucket-faults.js';
import type { OssOperation } from '../support/oss-faults.js';
import { fillOf, gatedSource, verified } from '../support/gated-source.js';
import { randomBlob, sha256 } from '../support/fake-upstream.js';
import { TEST_PART_SIZE } from '../support/oss-store.js';
import { keyOf, localFile, tieredStoreFixture, type TieredStoreFixture } from '../support/tiered-store.js';

let t: TieredStoreFixture;
/** How far the store's clock is ahead of the real one. */
let ahead = 0;
beforeEach(async () => {
  ahead = 0;
  t = await tieredStoreFixture({ now: () => Date.now() + ahead });
});
afterEach(() => t.cleanup());

const warned = (msg: string) => t.logged.filter((l) => l.level === 40 && l.msg === msg);

/** Every request for operation answers 5xx, retries included, while down() says so. */
function failWhile(down: () => boolean, operation?: OssOperation): void {
  t.f.oss.faults.failNext(Infinity, (r) => down() && (operation === undefined || r.operation === operation));
}

/** A fill of blob into the fixture's store, checked to have committed the verified local copy. */
async function fillLocally(blob: Buffer): Promise<string> {
  const digest = sha256(blob);
  const fill = fillOf(digest, gatedSource(blob), t.store);
  await fill.run();
  expect(fill.committed).toBe(true);
  expect((await readFile(join(t.layout.root, localFile(digest)))).equals(blob)).toBe(true);
  expect(await t.store.local.stat(digest)).toEqual({ size: blob.length });
  return digest;
}

describe('TieredBlobStore with the bucket failing: the local disk carries on alone', () => {
  it('takes a blob lookup in a bucket that does not answer as a miss, logged at warn once per minute', async () => {
    const blob = randomBlob(200 * 1024, 70);
    const writer = await t.f.store.createWriter(sha256(blob));
    await writer.write(0, blob);
    await writer.commit(verified(blob));
    await writer.close();
    await t.f.oss.close();
    expect(await t.store.stat(sha256(blob))).toBeNull();
    expect(await t.store.open(sha256(blob))).toBeNull();
    const lines = () => warned('bucket lookup failed: taken as a miss');
    expect(lines()).toHaveLength(1);
    expect(lines()[0]).toMatchObject({ digest: sha256(blob), err: expect.stringMatching(/HeadObject .*ECONNREFUSED/) });
    ahead = BUCKET_REST_MS;
    expect(await t.store.stat(sha256(blob))).toBeNull();
    expect(lines()).toHaveLength(1);
    ahead = 61_000;
    expect(await t.store.stat(sha256(blob))).toBeNull();
    expect(lines()).toHaveLength(2);
    expect(lines()[1]).toMatchObject({ repeatedSinceLastLine: 1 });
  });

  it('leaves a stalling bucket alone for a while after a timeout: lookups are misses and fills go to the disk only, then asks it again', async () => {
    const store = t.newStore({ now: () => Date.now() + ahead, oss: { timeoutMs: 300 } });
    t.f.oss.faults.stallNext(1, (r) => r.operation === 'HeadObject');
    const blob = randomBlob(2 * TEST_PART_SIZE + 1, 83);
    expect(await store.stat(sha256(blob))).toBeNull();
    const asked = () => (['HeadObject', 'GetObject', 'InitiateMultipartUpload', 'PutObject'] as const).map((op) => t.f.oss.faults.count(op));
    const before = asked();
    expect(await store.open(sha256(blob))).toBeNull();
    const fill = fillOf(sha256(blob), gatedSource(blob), store);
    await fill.run();
    expect(fill.committed).toBe(true);
    expect(asked()).toEqual(before);
    expect(t.f.bucketResidue()).toEqual([]);

    ahead = BUCKET_REST_MS;
    const next = randomBlob(TEST_PART_SIZE + 2, 84);
    const again = fillOf(sha256(next), gatedSource(next), store);
    await again.run();
    expect(t.f.oss.objectBytes(keyOf(sha256(next)))?.equals(next)).toBe(true);
  });

  it('takes a bucket answering 5xx to lookups as a miss', async () => {
    failWhile(() => true, 'HeadObject');
    expect(await t.store.stat(sha256(randomBlob(10, 72)))).toBeNull();
    expect(await t.store.open(sha256(randomBlob(10, 72)))).toBeNull();
    expect(warned('bucket lookup failed: taken as a miss')).toHaveLength(1);
  });

  it('commits a fill to the disk when the bucket is down, leaving nothing in the bucket; once back, the next blob goes to both', async () => {
    let down = true;
    failWhile(() => down);
    const first = randomBlob(5 * TEST_PART_SIZE + 17, 73);
    const small = randomBlob(1000, 74);
    await fillLocally(first);
    await fillLocally(small);
    expect(t.f.bucketResidue()).toEqual([]);
    expect(warned('bucket upload failed: the blob is kept on the local disk only')).toHaveLength(1);

    down = false;
    ahead = BUCKET_REST_MS;
    const next = randomBlob(3 * TEST_PART_SIZE + 5, 75);
    const digest = await fillLocally(next);
    expect(t.f.oss.objectBytes(keyOf(digest))?.equals(next)).toBe(true);
    expect(t.f.bucketResidue()).toEqual([keyOf(digest)]);
  });

  it('commits a fill to the disk when the bucket is unreachable (connection refused), still only once verified', async () => {
    await t.f.oss.close();
    const digest = await fillLocally(randomBlob(2 * TEST_PART_SIZE + 3, 76));
    expect(t.f.bucketResidue()).toEqual([]);
    const wrong = fillOf(sha256(randomBlob(10, 81)), gatedSource(randomBlob(3 * TEST_PART_SIZE, 80)), t.store);
    await wrong.run();
    expect(wrong.state).toBe('failed');
    expect(await t.diskFiles()).toEqual([localFile(digest)]);
  });

  it('a part failing beyond the retries: the disk copy is committed, no object, the upload aborted', async () => {
    failWhile(() => true, 'UploadPart');
    const blob = randomBlob(8 * TEST_PART_SIZE + 99, 77);
    await fillLocally(blob);
    expect(t.f.oss.faults.count('CompleteMultipartUpload')).toBe(0);
    expect(t.f.oss.faults.count('AbortMultipartUpload')).toBe(1);
    expect(t.f.bucketResidue()).toEqual([]);
  });

  it('one part failing beyond the retries mid-upload: the fill writes the rest to the disk only', async () => {
    t.f.oss.faults.failNext(3, (r) => r.operation === 'UploadPart' && r.partNumber === 3);
    const blob = randomBlob(12 * TEST_PART_SIZE + 1, 78);
    await fillLocally(blob);
    expect(t.f.oss.faults.count('CompleteMultipartUpload')).toBe(0);
    expect(t.f.oss.faults.count('AbortMultipartUpload')).toBe(1);
    expect(t.f.bucketResidue()).toEqual([]);
  });

  it('completing the upload failing beyond the retries: the disk copy is committed, the upload aborted', async () => {
    failWhile(() => true, 'CompleteMultipartUpload');
    await fillLocally(randomBlob(4 * TEST_PART_SIZE + 1, 79));
    expect(t.f.oss.faults.count('AbortMultipartUpload')).toBe(1);
    expect(t.f.bucketResidue()).toEqual([]);
  });

  it('a replica with an empty disk and the bucket down fills from its source instead', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'acr-tiered-down-'));
    try {
      const replica = t.newStore({ dir });
      await replica.prepare();
      await t.f.oss.close();
      const blob = randomBlob(1000, 82);
      expect(await replica.stat(sha256(blob))).toBeNull();
      const fill = fillOf(sha256(blob), gatedSource(blob), replica);
      await fill.run();
      expect(fill.committed).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
