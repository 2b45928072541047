import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlobStore } from '../../src/cache/blob-store.js';
import { openDatabase, type Db } from '../../src/cache/db.js';
import { Fill, type BlobSource } from '../../src/cache/fill.js';
import { cacheLayout } from '../../src/cache/layout.js';
import { eventually } from '../support/eventually.js';
import { randomBlob, sha256 } from '../support/fake-upstream.js';

let dir: string;
let db: Db;
let store: BlobStore;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'acr-relay-'));
  db = openDatabase(join(dir, 'mirror.db'));
  store = new BlobStore(cacheLayout(dir), db, Date.now);
  await store.prepare();
});
afterEach(async () => {
  db.close();
  await rm(dir, { recursive: true, force: true });
});

/** A source serving blob in chunks of `chunk` bytes. */
function source(blob: Buffer, chunk = 64 * 1024) {
  return {
    label: 'test upstream',
    async open(offset: number) {
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

const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
const collect = async (s: NodeJS.ReadableStream) => {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
};

describe('Fill relay mode (cache not writable)', () => {
  it.each([
    ['after 1 MiB + 1000 bytes were written', 1024 * 1024 + 1000],
    ['on the first write', 0],
  ])('relays the whole blob to its readers when the disk fills up %s, and commits nothing', async (_name, failAt) => {
    const blob = randomBlob(20 * 1024 * 1024, 7);
    const digest = sha256(blob);
    const createTemp = store.createTemp.bind(store);
    store.createTemp = async (d) => {
      const t = await createTemp(d);
      const writev = t.handle.writev.bind(t.handle);
      let written = 0;
      // like a nearly full disk: the write that crosses the limit is short (no error), the next one fails
      (t.handle as unknown as { writev: unknown }).writev = async (buffers: readonly Buffer[], position?: number) => {
        if (written >= failAt) throw enospc();
        let room = failAt - written;
        const taken = [];
        for (const b of buffers) {
          if (room <= 0) break;
          taken.push(b.subarray(0, room));
          room -= Math.min(room, b.length);
        }
        const result = await writev(taken, position);
        written += result.bytesWritten;
        return result;
      };
      return t;
    };
    const diskErrors: string[] = [];
    const fill = new Fill(digest, source(blob), store, { timeoutMs: 30_000, maxResumes: 0, log: pino({ level: 'silent' }), onDiskError: (e) => diskErrors.push(e.code!) });
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
  });

  it('relays from the start when no temp file can be created (read-only cache)', async () => {
    const blob = randomBlob(3 * 1024 * 1024, 8);
    store.createTemp = async () => {
      throw Object.assign(new Error('EROFS: read-only file system'), { code: 'EROFS' });
    };
    const fill = new Fill(sha256(blob), source(blob), store, { timeoutMs: 30_000, maxResumes: 0, log: pino({ level: 'silent' }) });
    const running = fill.run();
    await fill.ready;
    expect((await collect(fill.reader())).equals(blob)).toBe(true);
    await running;
    expect(fill.committed).toBe(false);
    expect(fill.joinable).toBe(false);
  });

  it('still cuts readers short when the relayed bytes do not match the digest', async () => {
    const blob = randomBlob(2 * 1024 * 1024, 9);
    store.createTemp = async () => {
      throw Object.assign(new Error('EROFS'), { code: 'EROFS' });
    };
    const fill = new Fill(sha256(Buffer.from('something else')), source(blob), store, { timeoutMs: 30_000, maxResumes: 0, log: pino({ level: 'silent' }) });
    const running = fill.run();
    await fill.ready;
    await expect(collect(fill.reader())).rejects.toThrow(/does not match its digest/);
    await running;
    expect(fill.state).toBe('failed');
  });
});

/** Serves blob in chunks of `chunk` bytes, waiting `gapMs` between them, and records what the fill was told. */
function pacedSource(blob: Buffer, chunk: number, gapMs: number): BlobSource & { delivered: number } {
  const src = {
    label: 'test upstream',
    delivered: 0,
    async open(offset: number) {
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
});
