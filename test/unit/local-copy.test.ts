import { setImmediate as turn } from 'node:timers/promises';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { BlobWriter } from '../../src/cache/blob-store.js';
import { LocalCopy } from '../../src/cache/local-copy.js';
import { MemoryBlobStore } from '../../src/cache/memory-blob-store.js';
import { randomBlob, sha256 } from '../support/fake-upstream.js';

const MiB = 1024 * 1024;

/** A memory store whose writes wait for open(), recording how many buffers each write carried. */
function gatedStore() {
  const store = new MemoryBlobStore();
  const writes: number[] = [];
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const createWriter = store.createWriter.bind(store);
  store.createWriter = async (digest: string): Promise<BlobWriter> => {
    const writer = await createWriter(digest);
    const write = writer.write.bind(writer);
    writer.write = async (offset, bytes) => {
      writes.push(Array.isArray(bytes) ? bytes.length : 1);
      await gate;
      return write(offset, bytes);
    };
    return writer;
  };
  return { store, writes, open };
}

function copyOf(blob: Buffer, store: MemoryBlobStore): { copy: LocalCopy; settled: Promise<void> } {
  let settled!: () => void;
  const done = new Promise<void>((resolve) => (settled = resolve));
  const copy = new LocalCopy(sha256(blob), blob.length, { local: store, space: null }, pino({ level: 'silent' }), settled);
  return { copy, settled: done };
}

describe('LocalCopy: a bucket read copied to the local disk', () => {
  it('passes chunks on while a disk write is under way and writes the chunks that arrived meanwhile in one write', async () => {
    const blob = randomBlob(3 * 64 * 1024, 7);
    const { store, writes, open } = gatedStore();
    const { copy, settled } = copyOf(blob, store);
    const chunks = [0, 1, 2].map((i) => blob.subarray(i * 64 * 1024, (i + 1) * 64 * 1024));
    const added: boolean[] = [];
    void copy.add(chunks[0]!).then(() => added.push(true));
    await turn();
    for (const chunk of chunks.slice(1)) void copy.add(chunk).then(() => added.push(true));
    await turn();
    expect(added).toHaveLength(3);
    open();
    await copy.finish();
    await settled;
    expect(writes).toEqual([1, 2]);
    expect(await store.stat(sha256(blob))).toEqual({ size: blob.length });
  });

  it('holds the reader back once 8 MiB wait for the disk, until the disk has written them', async () => {
    const blob = randomBlob(9 * MiB, 8);
    const { store, open } = gatedStore();
    const { copy } = copyOf(blob, store);
    const released: number[] = [];
    for (let at = 0; at < blob.length; at += MiB) void copy.add(blob.subarray(at, at + MiB)).then(() => released.push(at / MiB));
    await turn();
    expect(released).toEqual([0, 1, 2, 3, 4, 5, 6]);
    open();
    await copy.finish();
    expect(released).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(await store.stat(sha256(blob))).toEqual({ size: blob.length });
  });
});
