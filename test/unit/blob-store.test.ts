import { mkdir, mkdtemp, open, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FsBlobWriter } from '../../src/cache/fs-blob-io.js';
import { FsBlobStore } from '../../src/cache/fs-blob-store.js';
import { cacheLayout } from '../../src/cache/layout.js';
import { MemoryBlobStore } from '../../src/cache/memory-blob-store.js';
import { commitBlob } from '../support/commit-blob.js';
import { randomBlob, sha256 } from '../support/fake-upstream.js';
import { OSS_PREFIX, ossStoreFixture } from '../support/oss-store.js';
import { tieredStoreFixture } from '../support/tiered-store.js';
import { blobStoreContract } from './blob-store-contract.js';

/** Every file under dir, relative to it. */
async function files(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(dir.length + 1));
}

blobStoreContract(
  'filesystem',
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'acr-blob-store-'));
    const layout = cacheLayout(dir);
    const store = new FsBlobStore(layout);
    await store.prepare();
    let leftovers = 0;
    return {
      store,
      residue: async () => [...(await files(layout.tmp)).map((f) => `tmp/${f}`), ...(await files(layout.blobs)).map((f) => `blobs/${f}`)],
      async leaveCrashLeftover(bytes, ageMs) {
        const path = join(layout.tmp, `sha256-${'0'.repeat(64)}.crashed${leftovers++}`);
        await writeFile(path, Buffer.alloc(bytes));
        const at = new Date(Date.now() - ageMs);
        await utimes(path, at, at);
      },
      reopen: () => new FsBlobStore(layout),
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  },
  { outlivesProcess: true },
);

blobStoreContract(
  'memory',
  async () => {
    const store = new MemoryBlobStore();
    return {
      store,
      residue: async () => {
        const names = [...store.pending].map((w) => `pending ${w.digest}`);
        for await (const b of store.list()) names.push(b.digest);
        return names;
      },
      cleanup: async () => {},
    };
  },
  { outlivesProcess: false },
);

blobStoreContract(
  'OSS (test server)',
  async () => {
    const f = await ossStoreFixture();
    return {
      store: f.store,
      residue: async () => f.bucketResidue(),
      async leaveCrashLeftover(bytes, ageMs) {
        const key = `${OSS_PREFIX}blobs/sha256/${'0'.repeat(64)}`;
        const { uploadId } = await f.client.initMultipartUpload(key);
        await f.client.uploadPart(key, uploadId, 1, Buffer.alloc(bytes), 0, bytes);
        f.oss.backdateUpload(uploadId, new Date(Date.now() - ageMs));
      },
      reopen: () => f.newStore(),
      prepareSparesRecentLeftovers: true,
      cleanup: () => f.cleanup(),
    };
  },
  { outlivesProcess: true },
);

blobStoreContract(
  'local disk in front of OSS (test server)',
  async () => {
    const t = await tieredStoreFixture();
    let leftovers = 0;
    return {
      store: t.store,
      residue: async () => [...(await t.diskFiles()).filter((name) => !name.endsWith('mirror.db')), ...t.f.bucketResidue()],
      async leaveCrashLeftover(bytes, ageMs) {
        const path = join(t.layout.tmp, `sha256-${'0'.repeat(64)}.crashed${leftovers++}`);
        await writeFile(path, Buffer.alloc(bytes));
        const at = new Date(Date.now() - ageMs);
        await utimes(path, at, at);
      },
      reopen: () => t.newStore(),
      sharedTier: true,
      cleanup: () => t.cleanup(),
    };
  },
  { outlivesProcess: true },
);

describe('FsBlobStore', () => {
  it('continues writes the disk takes only in part, and fails with ENOSPC when it takes nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'acr-blob-store-'));
    try {
      const blob = randomBlob(1_000_000, 11);
      const digest = sha256(blob);
      const path = join(dir, 'temp');
      const handle = await open(path, 'wx+');
      let room = 700_000;
      const writev = handle.writev.bind(handle);
      const calls: number[] = [];
      // like a nearly full disk: each write takes at most 100 000 bytes, and nothing once 700 000 are in
      (handle as unknown as { writev: unknown }).writev = async (buffers: Buffer[], position: number) => {
        const take = Math.min(100_000, room);
        calls.push(take);
        const taken = Buffer.concat(buffers).subarray(0, take);
        room -= take;
        return take ? writev([taken], position) : { bytesWritten: 0, buffers };
      };
      const target = join(dir, 'blobs', 'committed');
      const writer = new FsBlobWriter(digest, path, handle, target, { committed: () => {}, closed: () => {} });
      await writer.write(0, [blob.subarray(0, 250_000), blob.subarray(250_000, 500_000)]);
      expect(calls).toEqual([100_000, 100_000, 100_000, 100_000, 100_000]);
      await expect(writer.write(500_000, blob.subarray(500_000))).rejects.toMatchObject({ code: 'ENOSPC' });
      const back = Buffer.alloc(700_000);
      expect(await writer.read(back, 0)).toBe(700_000);
      expect(back.equals(blob.subarray(0, 700_000))).toBe(true);
      await writer.close();
      expect(await readdir(dir)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('commits into blobs/sha256/<2 hex>/<hex>, lists only files named for their place, and gives the others to gc', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'acr-blob-store-'));
    try {
      const layout = cacheLayout(dir);
      const store = new FsBlobStore(layout);
      await store.prepare();
      const blob = randomBlob(5000, 12);
      const digest = await commitBlob(store, blob);
      expect(await files(layout.blobs)).toEqual([`sha256/${digest.slice(7, 9)}/${digest.slice(7)}`]);
      const misplaced = `${digest.slice(7, 9) === 'ff' ? 'ee' : 'ff'}`;
      await mkdir(join(layout.blobs, 'sha256', misplaced), { recursive: true });
      await writeFile(join(layout.blobs, 'sha256', misplaced, digest.slice(7)), blob);
      await writeFile(join(layout.blobs, 'sha256', misplaced, 'not-a-digest'), blob);
      const listed = [];
      for await (const b of store.list()) listed.push(b);
      expect(listed).toEqual([{ digest, size: 5000 }]);
      const strays = await store.leftovers(Date.now() + 60_000);
      expect(strays.map((l) => l.name).sort()).toEqual([`blobs/sha256/${misplaced}/${digest.slice(7)}`, `blobs/sha256/${misplaced}/not-a-digest`]);
      await store.removeLeftovers(strays);
      expect(await files(layout.blobs)).toEqual([`sha256/${digest.slice(7, 9)}/${digest.slice(7)}`]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
