import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FsBlobStore } from '../../src/cache/fs-blob-store.js';
import { Fill, type BlobSource } from '../../src/cache/fill.js';
import { cacheLayout } from '../../src/cache/layout.js';
import { MemoryBlobStore } from '../../src/cache/memory-blob-store.js';
import { DigestHasher } from '../../src/cache/digest.js';
import { PlacedBytes } from '../../src/cache/placed-bytes.js';
import { Slots } from '../../src/util/slots.js';
import { eventually } from '../support/eventually.js';
import { randomBlob, sha256 } from '../support/fake-upstream.js';

let dir: string;
let store: FsBlobStore;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'acr-relay-'));
  store = new FsBlobStore(cacheLayout(dir));
  await store.prepare();
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A source serving blob in chunks of `chunk` bytes. */
function source(blob: Buffer, chunk = 64 * 1024) {
  return {
    label: 'test upstream',
    async open({ start: offset }: { start: number }) {
      let at = offset;
      const body = new ReadableStream<Uint8Array>({
        pull(c) {
          if (at >= blob.length) return c.close();
          c.enqueue(new Uint8Array(blob.subarray(at, at + chunk)));
          at += chunk;
        },
      });
      return { start: offset, size: blob.length, body };
    },
  };
}

/** Like source(), answering bounded ranges (206) and offering a plan of `segment`-byte ranges over 4 connections. */
function rangedSource(blob: Buffer, segment: number): BlobSource & { bounded: number } {
  const whole = source(blob);
  return {
    label: whole.label,
    bounded: 0,
    segments: { connections: 4, segmentSize: segment, slots: new Slots(8) },
    async open({ start, end }) {
      if (end === undefined) return whole.open({ start });
      this.bounded++;
      const part = await source(blob.subarray(0, end + 1)).open({ start });
      return { ...part, size: blob.length, partial: true };
    },
  };
}

const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
const collect = async (s: NodeJS.ReadableStream) => {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
};

describe('Fill relay mode (cache not writable)', () => {
  it.each([
    ['after 1 MiB + 1000 bytes were written', 1024 * 1024 + 1000, false],
    ['on the first write', 0, false],
    ['after 1 MiB + 1000 bytes of segments were written', 1024 * 1024 + 1000, true],
    ['on the first write of a segmented download', 0, true],
  ])('relays the whole blob to its readers when the disk fills up %s, and commits nothing', async (_name, failAt, segmented) => {
    const blob = randomBlob(20 * 1024 * 1024, 7);
    const digest = sha256(blob);
    const createWriter = store.createWriter.bind(store);
    store.createWriter = async (d) => {
      const w = await createWriter(d);
      const write = w.write.bind(w);
      let written = 0;
      // like a nearly full disk: the write that crosses the limit is taken in part, then the disk is full
      w.write = async (offset: number, bytes: Buffer | Buffer[]) => {
        const all = Buffer.concat(Array.isArray(bytes) ? bytes : [bytes]);
        const room = Math.max(0, failAt - written);
        if (room > 0) await write(offset, all.subarray(0, room));
        written += Math.min(room, all.length);
        if (all.length > room) throw enospc();
      };
      return w;
    };
    const diskErrors: string[] = [];
    const from = segmented ? rangedSource(blob, 1024 * 1024) : source(blob);
    const fill = new Fill(digest, from, store, { timeoutMs: 30_000, maxResumes: 0, log: pino({ level: 'silent' }), onDiskError: (e) => diskErrors.push(e.code!) });
    const running = fill.run();
    await fill.ready;
    const readers = [fill.reader(), fill.reader()];
    const bodies = await Promise.all(readers.map(collect));
    await running;
    expect(bodies.map((body) => body.equals(blob))).toEqual([true, true]);
    expect(fill.committed).toBe(false);
    expect(fill.state).toBe('done');
    expect(diskErrors).toEqual(['ENOSPC']);
    expect(await store.open(digest)).toBeNull();
    if ('bounded' in from) expect(from.bounded, 'segments were asked for').toBeGreaterThan(1);
  });

  it('relays from the start when no temp file can be created (read-only cache)', async () => {
    const blob = randomBlob(3 * 1024 * 1024, 8);
    store.createWriter = async () => {
      throw Object.assign(new Error('EROFS: read-only file system'), { code: 'EROFS' });
    };
    const fill = new Fill(sha256(blob), source(blob), store, { timeoutMs: 30_000, maxResumes: 0, log: pino({ level: 'silent' }) });
    const leave = fill.hold(true); // as a client request does until it reads
    const running = fill.run();
    await fill.ready;
    const reader = fill.reader();
    leave();
    expect((await collect(reader)).equals(blob)).toBe(true);
    await running;
    expect(fill.committed).toBe(false);
    expect(fill.joinable).toBe(false);
  });

  it('stops at once, dropped, when it cannot cache and nobody is there to relay to (a prefetch, a warm job)', async () => {
    const blob = randomBlob(3 * 1024 * 1024, 10);
    store.createWriter = async () => {
      throw Object.assign(new Error('EROFS: read-only file system'), { code: 'EROFS' });
    };
    const fill = new Fill(sha256(blob), source(blob), store, { timeoutMs: 30_000, maxResumes: 0, log: pino({ level: 'silent' }) });
    const leave = fill.hold(); // waits for the commit without reading
    await fill.run();
    leave();
    expect([fill.state, fill.dropped, fill.abandoned]).toEqual(['failed', true, false]);
    expect(fill.received, 'no body byte was taken').toBe(0);
  });

  it('still cuts readers short when the relayed bytes do not match the digest', async () => {
    const blob = randomBlob(2 * 1024 * 1024, 9);
    store.createWriter = async () => {
      throw Object.assign(new Error('EROFS'), { code: 'EROFS' });
    };
    const fill = new Fill(sha256(Buffer.from('something else')), source(blob), store, { timeoutMs: 30_000, maxResumes: 0, log: pino({ level: 'silent' }) });
    const leave = fill.hold(true);
    const running = fill.run();
    await fill.ready;
    const reader = fill.reader();
    leave();
    await expect(collect(reader)).rejects.toThrow(/does not match its digest/);
    await running;
    expect(fill.state).toBe('failed');
  });
});

/** Serves blob in chunks of `chunk` bytes, waiting `gapMs` between them, and records what the fill was told. */
function pacedSource(blob: Buffer, chunk: number, gapMs: number): BlobSource & { delivered: number } {
  const src = {
    label: 'test upstream',
    delivered: 0,
    async open({ start: offset }: { start: number }) {
      let at = offset;
      const body = new ReadableStream<Uint8Array>({
        async pull(c) {
          if (at >= blob.length) return c.close();
          if (gapMs) await sleep(gapMs);
          c.enqueue(new Uint8Array(blob.subarray(at, at + chunk)));
          at += chunk;
          src.delivered = at;
        },
      });
      return { start: offset, size: blob.length, body };
    },
  };
  return src;
}

const options = { timeoutMs: 30_000, maxResumes: 0, log: pino({ level: 'silent' }) };

describe('Fill', () => {
  it('hands readers the bytes received so far before they reach the disk, and commits the blob', async () => {
    const blob = randomBlob(3 * 1024 * 1024 + 123, 21);
    const src = pacedSource(blob, 64 * 1024, 5);
    const fill = new Fill(sha256(blob), src, store, options);
    const running = fill.run();
    await fill.ready;
    const reader = fill.reader();
    const parts: Buffer[] = [];
    const lags: number[] = [];
    reader.on('data', (c: Buffer) => {
      parts.push(c);
      lags.push(src.delivered - parts.reduce((n, p) => n + p.length, 0));
    });
    await new Promise((resolve, reject) => reader.on('end', resolve).on('error', reject));
    await running;
    expect(Buffer.concat(parts).equals(blob)).toBe(true);
    // Every byte but the last reaches the reader while its chunk is the newest one received (less than 1 MiB,
    // the write batch, so most of them are not on disk yet).
    expect(Math.max(...lags.slice(0, -1))).toBeLessThanOrEqual(64 * 1024);
    expect(fill.committed).toBe(true);
    expect((await store.open(sha256(blob)))?.size).toBe(blob.length);
  });

  it('leaves no temp file when the digest does not match while a reader waits for more', async () => {
    const blob = randomBlob(600_000, 22);
    const fill = new Fill(sha256(Buffer.from('something else')), pacedSource(blob, 100_000, 5), store, options);
    const running = fill.run();
    await fill.ready;
    const reader = fill.reader();
    const failed = new Promise<Error>((resolve) => reader.on('error', resolve));
    reader.resume();
    await running;
    expect((await failed).message).toMatch(/does not match its digest/);
    await fill.finished;
    expect(fill.state).toBe('failed');
    await eventually(async () => expect(await readdir(join(dir, 'tmp'))).toEqual([]));
  });

  it('works on any BlobStore: a reader that fell behind the memory window reads back from the writer', async () => {
    const memory = new MemoryBlobStore();
    const blob = randomBlob(5 * 1024 * 1024 + 5, 23);
    const fill = new Fill(sha256(blob), pacedSource(blob, 256 * 1024, 0), memory, options);
    const reads: number[] = [];
    const running = fill.run();
    await fill.ready;
    const reader = fill.reader(1000);
    await running; // nothing read yet: all but the last MiB or so left memory for the writer
    expect(fill.committed).toBe(true);
    expect(memory.pending.size).toBe(0);
    const parts: Buffer[] = [];
    for await (const chunk of reader) {
      parts.push(chunk as Buffer);
      reads.push((chunk as Buffer).length);
    }
    expect(Buffer.concat(parts).equals(blob.subarray(1000))).toBe(true);
    // read back from the writer in 256 KiB reads; from memory the first piece would end where its chunk ends
    expect(reads[0]).toBe(256 * 1024);
    expect(await memory.stat(sha256(blob))).toEqual({ size: blob.length });
  });
});

describe('PlacedBytes (the segments of a ranged fill)', () => {
  it('hands on the bytes that grew the hashed prefix, each once and in order, reading back only those that landed past a gap', async () => {
    const blob = randomBlob(1_000_000, 24);
    const writer = await new MemoryBlobStore().createWriter(sha256(blob));
    let readBack = 0;
    const read = writer.read.bind(writer);
    writer.read = async (buffer, position) => {
      const n = await read(buffer, position);
      readBack += n;
      return n;
    };
    const hasher = new DigestHasher(sha256(blob));
    const handed: Buffer[] = [];
    const prefixes: number[] = [];
    const placed = new PlacedBytes(writer, hasher, (prefix, bytes) => {
      prefixes.push(prefix);
      handed.push(...bytes);
    });
    await placed.place(600_000, [blob.subarray(600_000, 800_000), blob.subarray(800_000)]);
    await placed.place(0, [blob.subarray(0, 300_000)]);
    await placed.place(300_000, [blob.subarray(300_000, 600_000)]);
    expect(Buffer.concat(handed).equals(blob)).toBe(true);
    expect(prefixes[0]).toBe(300_000);
    expect(prefixes.at(-1)).toBe(blob.length);
    // Only the segment that landed ahead of the prefix is read back; the others are hashed as they land.
    expect(readBack).toBe(400_000);
    expect(hasher.verify()).toHaveProperty('verified');
  });
});
