import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { brokenStream, FakeUpstream, type FakeCall, makeImage } from '../support/fake-upstream.js';
import { eventually } from '../support/eventually.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';

const SEGMENT = 64 * 1024;
let fake: FakeUpstream;
let m: TestMirror;

beforeEach(async () => {
  fake = new FakeUpstream();
  m = await startTestMirror(fake, { upstream: { fill_connections: 4, fill_segment_size: '64KiB' } });
});
afterEach(async () => {
  fake.intercept = null;
  fake.ossBody = null;
  await m.close();
});

const blobFile = (digest: string) => join(m.dir, 'data', 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));
const ossCalls = () => fake.calls.filter((c) => c.host === 'oss.test');
const registryBlobGets = () => fake.count({ host: 'registry.test', method: 'GET', pathIncludes: '/blobs/', authorized: true });

/** Bytes [start, end] a call asked for (inclusive), clamped to the blob. */
function asked(call: FakeCall, size: number): { start: number; end: number } {
  const range = /^bytes=(\d+)-(\d*)$/.exec(call.range ?? '');
  return { start: range ? Number(range[1]) : 0, end: range?.[2] ? Math.min(Number(range[2]), size - 1) : size - 1 };
}

/** Adds an image with one layer of `size` bytes; returns the layer's digest and bytes. */
function layer(size: number): [string, Buffer] {
  const img = fake.add(makeImage('team/app', `v${size}`, [size], size + 1));
  return [...img.blobs.entries()].find(([, b]) => b.length === size)!;
}

/** A body sending `bytes` once `gate` resolves. */
function gated(bytes: Buffer, gate: Promise<void>): ReadableStream<Uint8Array> {
  return new ReadableStream({
    async pull(c) {
      await gate;
      c.enqueue(new Uint8Array(bytes));
      c.close();
    },
  });
}

async function pulledAndCommitted(digest: string, bytes: Buffer): Promise<void> {
  const res = await m.request(`/v2/team/app/blobs/${digest}`);
  expect(res.status).toBe(200);
  expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
  await eventually(() => expect(existsSync(blobFile(digest)), 'blob committed').toBe(true));
}

describe('ranged fills', () => {
  it.each([
    ['empty', 0],
    ['1 byte', 1],
    ['segment - 1', SEGMENT - 1],
    ['one segment', SEGMENT],
    ['segment + 1', SEGMENT + 1],
    ['many segments', 9 * SEGMENT + 123],
  ])('caches a %s blob byte for byte, fetched in bounded ranges that add up to it once', async (_name, size) => {
    const [digest, bytes] = layer(size);
    await pulledAndCommitted(digest, bytes);
    const again = await m.request(`/v2/team/app/blobs/${digest}`);
    expect(again.headers.get('x-cache')).toBe('hit');
    expect(Buffer.from(await again.arrayBuffer()).equals(bytes)).toBe(true);
    const calls = ossCalls();
    for (const call of calls) expect(call.range).toMatch(/^bytes=\d+-\d+$/);
    expect(calls).toHaveLength(Math.max(1, Math.ceil(size / SEGMENT)));
    const fetched = calls.reduce((n, c) => n + (size === 0 ? 0 : asked(c, size).end + 1 - asked(c, size).start), 0);
    expect(fetched).toBe(size);
  });

  it('resumes a segment that breaks from the byte it reached, on the same signed link', async () => {
    const [digest, bytes] = layer(6 * SEGMENT);
    let broken = false;
    fake.ossBody = (_d, body, call) => {
      if (broken || call.range !== `bytes=${2 * SEGMENT}-${3 * SEGMENT - 1}`) return body;
      broken = true;
      return brokenStream(body.subarray(2 * SEGMENT, 2 * SEGMENT + 1000));
    };
    await pulledAndCommitted(digest, bytes);
    expect(ossCalls().map((c) => c.range)).toContain(`bytes=${2 * SEGMENT + 1000}-${3 * SEGMENT - 1}`);
    expect(ossCalls()).toHaveLength(7);
    expect(registryBlobGets()).toBe(1);
  });

  it('commits nothing when one segment is corrupted, cuts the client short, and the next pull is clean', async () => {
    const [digest, bytes] = layer(6 * SEGMENT);
    fake.ossBody = (_d, body, call) => {
      if (!call.range?.startsWith(`bytes=${3 * SEGMENT}-`)) return body;
      const copy = Buffer.from(body);
      copy[3 * SEGMENT + 10] = copy[3 * SEGMENT + 10]! ^ 0xff;
      return copy;
    };
    const cut = await m.request(`/v2/team/app/blobs/${digest}`);
    await expect(cut.arrayBuffer(), 'the client is cut short').rejects.toThrow();
    await m.mirror.fills.settled();
    expect([existsSync(blobFile(digest)), await readdir(join(m.dir, 'data', 'tmp'))]).toEqual([false, []]);
    fake.ossBody = null;
    await pulledAndCommitted(digest, bytes);
    expect(fake.calls.filter((c) => c.host === 'oss.test' && c.range?.startsWith(`bytes=${3 * SEGMENT}-`))).toHaveLength(2);
  });

  it('asks the registry once for a fresh link when storage refuses the signed link mid-fill', async () => {
    const [digest, bytes] = layer(8 * SEGMENT);
    // The probe gets the first link; every later request with it is refused as expired; the registry signs anew.
    let links = 0;
    fake.intercept = (call) => {
      if (call.host === 'registry.test' && call.path.includes('/blobs/') && call.authorization) fake.linkExpires = ++links === 1 ? 9999999999 : 9999999998;
      if (call.host !== 'oss.test' || !call.path.includes('Expires=9999999999') || call.range === `bytes=0-${SEGMENT - 1}`) return undefined;
      return new Response('<Error><Code>AccessDenied</Code><Message>Request has expired.</Message></Error>', { status: 403 });
    };
    await pulledAndCommitted(digest, bytes);
    expect(ossCalls().filter((c) => c.path.includes('Expires=9999999999')).length).toBeGreaterThan(2);
    expect(registryBlobGets()).toBe(2);
  });

  it('gives a client joining mid-fill the exact bytes while segments land out of order', async () => {
    const [digest, bytes] = layer(8 * SEGMENT + 5);
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    fake.ossBody = (_d, body, call) => {
      if (call.range !== `bytes=${SEGMENT}-${2 * SEGMENT - 1}`) return body;
      return gated(body.subarray(SEGMENT, 2 * SEGMENT), gate);
    };
    const first = await m.request(`/v2/team/app/blobs/${digest}`);
    const firstBody = first.arrayBuffer();
    // Segments after the held one are fetched (into the temp file) while it waits.
    await eventually(() => expect(ossCalls().length).toBeGreaterThanOrEqual(5));
    const joined = await m.request(`/v2/team/app/blobs/${digest}`);
    expect(joined.headers.get('x-cache')).toBe('joined');
    const joinedBody = joined.arrayBuffer();
    open();
    expect(Buffer.from(await firstBody).equals(bytes)).toBe(true);
    expect(Buffer.from(await joinedBody).equals(bytes)).toBe(true);
    await eventually(() => expect(existsSync(blobFile(digest)), 'blob committed').toBe(true));
    expect(ossCalls()).toHaveLength(9);
  });

  it.each([
    [32, 8],
    [2, 4],
  ])('with storage_connections = %i, two fills of 4 connections hold at most %i storage connections at once', async (cap, most) => {
    await m.close();
    m = await startTestMirror(fake, { upstream: { fill_connections: 4, fill_segment_size: '64KiB', storage_connections: cap } });
    const blobs = [layer(12 * SEGMENT), layer(12 * SEGMENT + 1)];
    let open = 0;
    let peak = 0;
    fake.ossBody = (_d, body, call) => {
      const { start, end } = asked(call, body.length);
      open++;
      peak = Math.max(peak, open);
      return new ReadableStream({
        async pull(c) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          c.enqueue(new Uint8Array(body.subarray(start, end + 1)));
          c.close();
          open--;
        },
      });
    };
    await Promise.all(blobs.map(([digest, bytes]) => pulledAndCommitted(digest, bytes)));
    expect(peak).toBe(most);
  });

  it('takes one stream when storage answers a Range with 200 and the whole blob', async () => {
    const [digest, bytes] = layer(5 * SEGMENT + 7);
    fake.ignoresRange = true;
    await pulledAndCommitted(digest, bytes);
    expect(ossCalls()).toHaveLength(1);
  });

  it('downloads every blob as one stream with fill_connections = 1, as before', async () => {
    await m.close();
    m = await startTestMirror(fake, { upstream: { fill_connections: 1, fill_segment_size: '64KiB' } });
    const [digest, bytes] = layer(5 * SEGMENT);
    await pulledAndCommitted(digest, bytes);
    expect(ossCalls().map((c) => c.range)).toEqual([null]);
  });
});
