import { once } from 'node:events';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlobInfo, BlobStore, BlobWriter } from '../../src/cache/blob-store.js';
import { DigestHasher, VerifiedDigest } from '../../src/cache/digest.js';
import { eventually } from '../support/eventually.js';
import { randomBlob, sha256 } from '../support/fake-upstream.js';

/** A store to run the contract against, with ways to look behind it. */
export interface StoreUnderTest {
  store: BlobStore;
  /** Everything the storage holds, committed or not (files, pending writers), as names; [] when empty. */
  residue(): Promise<string[]>;
  /** Where the storage outlives the process: leave what a process killed mid-write leaves, last touched ageMs ago. */
  leaveCrashLeftover?(bytes: number, ageMs: number): Promise<void>;
  /** Where the storage outlives the process: a new store on the same storage, as after a restart (not prepared). */
  reopen?(): BlobStore;
  /**
   * Where several processes share the storage, prepare() removes only leftovers old enough to be dead (another
   * process's recent writer may still be running); otherwise it removes them all.
   */
  prepareSparesRecentLeftovers?: boolean;
  /**
   * A store in front of a shared tier (the tiered store: the disk before the bucket): each committed blob is in
   * both places, and delete() removes the local copy only, so the blob stays readable from the shared one.
   */
  sharedTier?: boolean;
  cleanup(): Promise<void>;
}

const verify = (digest: string, ...parts: Buffer[]) => {
  const hasher = new DigestHasher(digest);
  for (const p of parts) hasher.add(hasher.hashed, p);
  const result = hasher.verify();
  if (!('verified' in result)) throw new Error(`test bytes do not match ${digest}`);
  return result.verified;
};

const readAll = async (store: BlobStore, digest: string, range?: { start: number; end: number }) => {
  const reader = await store.open(digest);
  if (!reader) return null;
  const parts: Buffer[] = [];
  for await (const chunk of reader.stream(range)) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
};

async function put(store: BlobStore, blob: Buffer): Promise<string> {
  const digest = sha256(blob);
  const writer = await store.createWriter(digest);
  await writer.write(0, blob);
  await writer.commit(verify(digest, blob));
  await writer.close();
  return digest;
}

/** The BlobStore contract: every implementation runs these. */
export function blobStoreContract(name: string, create: () => Promise<StoreUnderTest>, opts: { outlivesProcess: boolean }): void {
  describe(`BlobStore contract: ${name}`, () => {
    let t: StoreUnderTest;
    let store: BlobStore;
    beforeEach(async () => {
      t = await create();
      store = t.store;
    });
    afterEach(() => t.cleanup());

    it('commits only with a hasher-verified digest for exactly the bytes written', async () => {
      const blob = randomBlob(100_000, 1);
      const digest = sha256(blob);
      const writer = await store.createWriter(digest);
      await writer.write(0, blob);
      const forged = { digest, size: blob.length } as unknown as VerifiedDigest;
      await expect(writer.commit(forged)).rejects.toThrow(/not verified/);
      expect(() => new VerifiedDigest(digest, blob.length, Symbol('forged'))).toThrow(/issued only by a DigestHasher/);
      const other = randomBlob(10, 2);
      await expect(writer.commit(verify(sha256(other), other))).rejects.toThrow(/commit refused/);
      const shorter = blob.subarray(0, 1000);
      await expect(writer.commit(verify(sha256(shorter), shorter))).rejects.toThrow(/commit refused/);
      expect(await store.stat(digest)).toBeNull();
      const mismatch = new DigestHasher(digest);
      mismatch.add(0, other);
      expect(mismatch.verify()).toEqual({ actual: sha256(other) });

      await writer.commit(verify(digest, blob));
      await writer.close();
      expect(await store.stat(digest)).toEqual({ size: blob.length });
      expect((await readAll(store, digest))!.equals(blob)).toBe(true);
    });

    it('takes positional writes out of order, reads them back, and serves ranges of the result', async () => {
      const blob = randomBlob(3 * 100_000 + 17, 3);
      const digest = sha256(blob);
      const writer = await store.createWriter(digest);
      await writer.write(200_000, blob.subarray(200_000));
      await writer.write(0, [blob.subarray(0, 50_000), blob.subarray(50_000, 100_000)]);
      await writer.write(100_000, blob.subarray(100_000, 200_000));
      const back = Buffer.alloc(1000);
      expect(await writer.read(back, 199_500)).toBe(1000);
      expect(back.equals(blob.subarray(199_500, 200_500))).toBe(true);
      await writer.commit(verify(digest, blob));
      await writer.close();
      expect((await readAll(store, digest))!.equals(blob)).toBe(true);
      expect((await readAll(store, digest, { start: 99_999, end: 200_001 }))!.equals(blob.subarray(99_999, 200_002))).toBe(true);
    });

    it('keeps a parked writer: its bytes read back, it takes more writes, and it commits', async () => {
      const blob = randomBlob(70_000, 4);
      const digest = sha256(blob);
      const writer = await store.createWriter(digest);
      await writer.write(0, blob.subarray(0, 40_000));
      await writer.park();
      await writer.park();
      const back = Buffer.alloc(100);
      expect(await writer.read(back, 39_900)).toBe(100);
      expect(back.equals(blob.subarray(39_900, 40_000))).toBe(true);
      await writer.park();
      await writer.write(40_000, blob.subarray(40_000));
      await writer.park();
      await writer.commit(verify(digest, blob));
      await writer.close();
      expect((await readAll(store, digest))!.equals(blob)).toBe(true);
    });

    it('leaves nothing after abort or a close without commit, and the written bytes stay readable until close', async () => {
      const blob = randomBlob(70_000, 4);
      const digest = sha256(blob);
      const aborted = await store.createWriter(digest);
      await aborted.write(0, blob);
      await aborted.abort();
      expect(await t.residue()).toEqual([]);
      const back = Buffer.alloc(10);
      expect(await aborted.read(back, 60_000)).toBe(10);
      expect(back.equals(blob.subarray(60_000, 60_010))).toBe(true);
      await expect(aborted.commit(verify(digest, blob))).rejects.toThrow(/after aborted/);
      await aborted.close();
      const abandoned = await store.createWriter(digest);
      await abandoned.write(0, blob);
      await abandoned.close();
      expect(await t.residue()).toEqual([]);
      expect(await store.stat(digest)).toBeNull();
      expect(await store.open(digest)).toBeNull();
    });

    it('lets concurrent writers of one digest both commit, with the right bytes in the end', async () => {
      const blob = randomBlob(200_000, 5);
      const digest = sha256(blob);
      const commits: BlobInfo[] = [];
      store.on('commit', (b) => commits.push(b));
      const writers: BlobWriter[] = [await store.createWriter(digest), await store.createWriter(digest)];
      await writers[0]!.write(0, blob.subarray(0, 100_000));
      await writers[1]!.write(100_000, blob.subarray(100_000));
      await writers[1]!.write(0, blob.subarray(0, 100_000));
      await writers[0]!.write(100_000, blob.subarray(100_000));
      await Promise.all(writers.map((w) => w.commit(verify(digest, blob))));
      await Promise.all(writers.map((w) => w.close()));
      expect(commits).toEqual([{ digest, size: blob.length }, { digest, size: blob.length }]);
      expect((await readAll(store, digest))!.equals(blob)).toBe(true);
      const listed: BlobInfo[] = [];
      for await (const b of store.list()) listed.push(b);
      expect(listed).toEqual([{ digest, size: blob.length }]);
      expect(await t.residue()).toHaveLength(t.sharedTier ? 2 : 1);
    });

    it('never deletes a blob while a reader has it open, whether streamed, sent or just opened', async () => {
      const blob = randomBlob(1_500_000, 6);
      const digest = await put(store, blob);
      const opened = (await store.open(digest))!;
      expect(opened.size).toBe(blob.length);
      expect(await store.delete(digest)).toBe(false);
      expect(store.inUse(digest)).toBe(true);
      opened.close();
      opened.close();
      expect(store.inUse(digest)).toBe(false);

      const streamed = (await store.open(digest))!.stream();
      expect(await store.delete(digest)).toBe(false);
      const parts: Buffer[] = [];
      const closed = once(streamed, 'close');
      for await (const c of streamed) parts.push(c as Buffer);
      await closed;
      expect(Buffer.concat(parts).equals(blob)).toBe(true);

      const sent: Buffer[] = [];
      let counted = 0;
      const out = new Writable({ write: (c: Buffer, _e, cb) => void (sent.push(Buffer.from(c)), cb()) });
      (await store.open(digest))!.sendTo(out, { start: 10, end: 1_000_009 }, (n) => (counted += n));
      expect(await store.delete(digest)).toBe(false);
      await once(out, 'finish');
      expect(Buffer.concat(sent).equals(blob.subarray(10, 1_000_010))).toBe(true);
      expect(counted).toBe(1_000_000);
      await eventually(() => expect(store.inUse(digest)).toBe(false));
      expect(await store.delete(digest)).toBe(true);
      expect(await store.stat(digest)).toEqual(t.sharedTier ? { size: blob.length } : null);
    });

    it('lists committed blobs with their sizes and deletes them, telling listeners', async () => {
      const blobs = [randomBlob(10, 7), randomBlob(20_000, 8), randomBlob(0, 9)];
      const digests = [];
      for (const b of blobs) digests.push(await put(store, b));
      const deleted: string[] = [];
      store.on('delete', (d) => deleted.push(d));
      const listed: BlobInfo[] = [];
      for await (const b of store.list()) listed.push(b);
      const byDigest = (a: BlobInfo, b: BlobInfo) => a.digest.localeCompare(b.digest);
      expect(listed.sort(byDigest)).toEqual(digests.map((digest, i) => ({ digest, size: blobs[i]!.length })).sort(byDigest));
      expect(await store.delete(digests[1]!)).toBe(true);
      expect(deleted).toEqual([digests[1]]);
      const after: string[] = [];
      for await (const b of store.list()) after.push(b.digest);
      expect(after.sort()).toEqual([digests[0], digests[2]].sort());
      const readAfterDelete = await readAll(store, digests[1]!);
      if (t.sharedTier) expect(readAfterDelete?.equals(blobs[1]!)).toBe(true);
      else expect(readAfterDelete).toBeNull();
      await store.probe();
    });

    if (!opts.outlivesProcess) {
      it('has no leftovers: an unfinished writer is not one', async () => {
        const live = await store.createWriter(sha256(Buffer.from('live')));
        await live.write(0, Buffer.from('live'));
        expect(await store.leftovers(Date.now() + 60_000)).toEqual([]);
        await live.close();
      });
      return;
    }

    it('reports crash leftovers past their age (never a writer of its own), removes them, and clears them on prepare', async () => {
      await t.leaveCrashLeftover!(300, 2 * 86_400_000);
      await t.leaveCrashLeftover!(400, 1000);
      const live = await store.createWriter(sha256(Buffer.from('live')));
      await live.write(0, Buffer.from('live'));
      const old = await store.leftovers(Date.now() - 86_400_000);
      expect(old.map((l) => l.size)).toEqual([300]);
      expect((await store.leftovers(Date.now() + 60_000)).map((l) => l.size).sort()).toEqual([300, 400]);
      await store.removeLeftovers(old);
      expect((await store.leftovers(Date.now() + 60_000)).map((l) => l.size)).toEqual([400]);
      await t.leaveCrashLeftover!(500, 2 * 86_400_000);
      const restarted = t.reopen!();
      await restarted.prepare();
      const afterRestart = (await restarted.leftovers(Date.now() + 60_000)).map((l) => l.size);
      expect(afterRestart).toEqual(t.prepareSparesRecentLeftovers ? [400] : []);
      await live.close();
    });
  });
}
