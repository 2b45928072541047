// Fills started by clients are bounded: concurrent fills per client and in all, their announced sizes against
// storage.max_size, and a fill nobody reads any more is stopped after a grace period.
import { existsSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { finishedJob, ADMIN_ENV, getJob, startWarm } from '../support/admin.js';
import { eventually } from '../support/eventually.js';
import { FakeUpstream, type FakeImage, makeImage } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';

const BLOB = 400_000;
const CHUNK = 64 * 1024;
let fake: FakeUpstream;
let m: TestMirror | undefined;
/** Digests whose upstream body stops after its first chunk until release(). */
let held: Set<string>;
let release: () => void;
let gate: Promise<void>;
/** Bytes the upstream has handed out, and whether the mirror cancelled the body, per digest. */
let sent: Map<string, number>;
let cancelled: Set<string>;

function setUp(config: Record<string, unknown>, slowChunkMs = 0): void {
  fake = new FakeUpstream();
  held = new Set();
  sent = new Map();
  cancelled = new Set();
  gate = new Promise((resolve) => (release = resolve));
  fake.ossBody = (digest, body, call) => {
    let at = Number(/^bytes=(\d+)-$/.exec(call.range ?? '')?.[1] ?? 0);
    return new ReadableStream({
      async pull(controller) {
        if (at > 0 && held.has(digest)) await gate;
        if (slowChunkMs) await new Promise((r) => setTimeout(r, slowChunkMs));
        if (at >= body.length) return controller.close();
        const chunk = body.subarray(at, at + CHUNK);
        at += chunk.length;
        sent.set(digest, (sent.get(digest) ?? 0) + chunk.length);
        controller.enqueue(new Uint8Array(chunk));
      },
      cancel() {
        cancelled.add(digest);
      },
    });
  };
  configured = config;
}
let configured: Record<string, unknown> = {};

async function start(): Promise<TestMirror> {
  m = await startTestMirror(fake, {
    config: configured,
    env: ADMIN_ENV,
    clientAddress: (c) => c.req.header('x-client') ?? '127.0.0.1',
  });
  return m;
}

afterEach(async () => {
  release?.();
  await m?.close();
  m = undefined;
});

const layers = (image: FakeImage) => [...image.blobs.entries()].filter(([, b]) => b.length === BLOB).map(([d]) => d);
const get = (digest: string, client = '127.0.0.1', repo = 'team/app') => m!.request(`/v2/${repo}/blobs/${digest}`, { headers: { 'x-client': client } });
const ossGets = (digest: string) => fake.count({ host: 'oss.test', method: 'GET', pathIncludes: digest });
/** Reads the answer whole (an unread body keeps the blob open, so eviction would skip it) and says where it came from. */
const cacheOf = async (digest: string) => {
  const res = await get(digest);
  await res.arrayBuffer();
  return res.headers.get('x-cache');
};
const bodyOf = async (res: Response) => Buffer.from(await res.arrayBuffer());

async function expectTooMany(res: Response, limit: RegExp): Promise<void> {
  expect(res.status).toBe(429);
  expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
  const { errors } = (await res.json()) as { errors: { code: string; message: string }[] };
  expect(errors[0]!.code).toBe('TOOMANYREQUESTS');
  expect(errors[0]!.message).toMatch(limit);
}

async function metric(name: string): Promise<string[]> {
  const text = await (await m!.request('/metrics')).text();
  return text.split('\n').filter((l) => l.startsWith(name));
}

/** Bytes in blobs/ and tmp/ now. */
async function bytesOnDisk(dir: string): Promise<number> {
  let total = 0;
  for (const sub of ['blobs', 'tmp']) {
    const root = join(dir, 'data', sub);
    if (!existsSync(root)) continue;
    for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
      if (entry.isFile()) total += (await stat(join(entry.parentPath, entry.name)).catch(() => ({ size: 0 }))).size;
    }
  }
  return total;
}

describe('concurrent fill caps', () => {
  it('answers 429 to a client starting one fill too many, while joining a running fill and other clients still work', async () => {
    setUp({ cache: { max_fills: 10, max_fills_per_client: 2 } });
    const img = fake.add(makeImage('team/app', 'v1', [BLOB, BLOB, BLOB, BLOB]));
    const [a, b, c, d] = layers(img) as [string, string, string, string];
    for (const x of [a, b, c]) held.add(x);
    await start();
    const ra = await get(a);
    const rb = await get(b);
    expect([ra.status, rb.status]).toEqual([200, 200]);
    await expectTooMany(await get(c), /cache\.max_fills_per_client/);
    const joined = await get(a);
    expect(joined.status).toBe(200);
    expect(joined.headers.get('x-cache')).toBe('joined');
    const other = await get(c, '127.0.0.2');
    expect(other.status).toBe(200);
    release();
    for (const [res, x] of [[ra, a], [rb, b], [joined, a], [other, c]] as const) expect((await bodyOf(res)).equals(img.blobs.get(x)!)).toBe(true);
    expect(ossGets(a)).toBe(1);
    expect(ossGets(c)).toBe(1);
    // Finished fills no longer count.
    await m!.mirror.fills.settled();
    expect(await cacheOf(d)).toBe('miss');
  });

  it('answers 429 naming the global cap once that many fills run, whoever started them', async () => {
    setUp({ cache: { max_fills: 2, max_fills_per_client: 10 } });
    const img = fake.add(makeImage('team/app', 'v1', [BLOB, BLOB, BLOB]));
    const [a, b, c] = layers(img) as [string, string, string];
    for (const d of [a, b, c]) held.add(d);
    await start();
    const ra = await get(a, '127.0.0.1');
    const rb = await get(b, '127.0.0.2');
    expect([ra.status, rb.status]).toEqual([200, 200]);
    const refused = await get(c, '127.0.0.3');
    await expectTooMany(refused, /cache\.max_fills\b(?!_)/);
    expect(ossGets(c)).toBe(0);
    expect((await get(b, '127.0.0.3')).status).toBe(200);
    release();
    await bodyOf(ra);
    await bodyOf(rb);
  });

  it('a warm job waits for a free fill slot instead of failing, and holds its slot against clients', async () => {
    setUp({ cache: { max_fills: 1, max_fills_per_client: 10 } });
    const img = fake.add(makeImage('team/app', 'v1', [BLOB, BLOB]));
    const [a, b] = layers(img) as [string, string];
    held.add(a);
    const warmed = fake.add(makeImage('team/other', 'v1', [BLOB], 7));
    const [w] = layers(warmed) as [string];
    held.add(w);
    await start();
    const ra = await get(a);
    expect(ra.status).toBe(200);
    const job = await startWarm(m!, { images: ['team/other:v1'] });
    await new Promise((r) => setTimeout(r, 200));
    expect((await getJob(m!, job.id)).state).toBe('running');
    expect(ossGets(w)).toBe(0);
    release();
    expect((await bodyOf(ra)).equals(img.blobs.get(a)!)).toBe(true);
    await eventually(() => expect(ossGets(w)).toBe(1));
    const done = await finishedJob(m!, job.id);
    expect(done.state).toBe('done');
    expect(done.bytesDone).toBe(done.bytesTotal);
    // While the warm job's fill ran, it held the only slot: a client starting another fill was refused then.
    held.add(b);
    gate = new Promise((resolve) => (release = resolve));
    const job2 = await startWarm(m!, { images: ['team/app:v1'] });
    await eventually(() => expect(ossGets(b)).toBe(1));
    const other = fake.add(makeImage('team/third', 'v1', [BLOB], 9));
    await expectTooMany(await get(layers(other)[0]!, '127.0.0.9', 'team/third'), /cache\.max_fills\b(?!_)/);
    release();
    expect((await finishedJob(m!, job2.id)).state).toBe('done');
  });
});

describe('warm jobs waiting for a fill slot', () => {
  it('start nothing once the mirror shuts down', async () => {
    setUp({ cache: { max_fills: 1 } });
    const img = fake.add(makeImage('team/app', 'v1', [BLOB]));
    const [a] = layers(img) as [string];
    held.add(a);
    const warmed = fake.add(makeImage('team/other', 'v1', [BLOB], 7));
    const [w] = layers(warmed) as [string];
    await start();
    const ra = await get(a);
    await startWarm(m!, { images: ['team/other:v1'] });
    await new Promise((r) => setTimeout(r, 100));
    m!.mirror.beginShutdown();
    release();
    expect((await bodyOf(ra)).equals(img.blobs.get(a)!)).toBe(true);
    await m!.mirror.fills.settled();
    await new Promise((r) => setTimeout(r, 100));
    expect(ossGets(w)).toBe(0);
  });
});

describe('a fill nobody reads', () => {
  it('is aborted after the grace period: nothing left in tmp/, the upstream stops sending, counted as abandoned', async () => {
    setUp({ cache: { orphan_fill_grace: '100ms' } }, 10);
    const img = fake.add(makeImage('team/app', 'v1', [BLOB * 10]));
    const digest = [...img.blobs.entries()].find(([, b]) => b.length === BLOB * 10)![0];
    await start();
    const res = await get(digest);
    const reader = res.body!.getReader();
    expect((await reader.read()).done).toBe(false);
    await reader.cancel();
    await eventually(async () => expect(await metric('acr_mirror_fills_total{result="abandoned"}')).toEqual(['acr_mirror_fills_total{result="abandoned"} 1']));
    expect(await readdir(join(m!.dir, 'data', 'tmp'))).toEqual([]);
    await eventually(() => expect(cancelled.has(digest)).toBe(true));
    const stopped = sent.get(digest)!;
    await new Promise((r) => setTimeout(r, 200));
    expect(sent.get(digest)).toBe(stopped);
    expect(stopped).toBeLessThan(BLOB * 10);
    expect(existsSync(join(m!.dir, 'data', 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7)))).toBe(false);
  });

  it('a client returning within the grace period joins the same fill: one upstream request', async () => {
    setUp({ cache: { orphan_fill_grace: '500ms' } });
    const img = fake.add(makeImage('team/app', 'v1', [BLOB]));
    const [digest] = layers(img) as [string];
    held.add(digest);
    await start();
    const first = await get(digest);
    const reader = first.body!.getReader();
    expect((await reader.read()).done).toBe(false);
    await reader.cancel();
    await new Promise((r) => setTimeout(r, 100));
    const again = await get(digest);
    expect(again.headers.get('x-cache')).toBe('joined');
    await new Promise((r) => setTimeout(r, 600)); // past the grace: the returning reader keeps it alive
    release();
    expect((await bodyOf(again)).equals(img.blobs.get(digest)!)).toBe(true);
    expect(ossGets(digest)).toBe(1);
    expect(await metric('acr_mirror_fills_total{result="abandoned"}')).toEqual([]);
  });
});

describe('space reserved for running fills', () => {
  it('relays a fill that does not fit beside the running ones, makes room by eviction when it can, never exceeding max_size', async () => {
    const max = Math.floor(BLOB * 1.5);
    setUp({ storage: { dir: 'data', max_size: String(max) } });
    const img = fake.add(makeImage('team/app', 'v1', [BLOB, BLOB]));
    const [a, b] = layers(img) as [string, string];
    held.add(a);
    held.add(b);
    await start();
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, await bytesOnDisk(m!.dir));
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    try {
      const ra = await get(a);
      const rb = await get(b);
      expect([ra.status, rb.status]).toEqual([200, 200]);
      release();
      expect((await bodyOf(ra)).equals(img.blobs.get(a)!)).toBe(true);
      expect((await bodyOf(rb)).equals(img.blobs.get(b)!)).toBe(true);
      await m!.mirror.fills.settled();
      expect(await metric('acr_mirror_fills_total{result="relayed"}')).toEqual(['acr_mirror_fills_total{result="relayed"} 1']);
      expect(await cacheOf(a)).toBe('hit');
      // b again: a is not being read, so eviction makes room for it.
      const again = await get(b);
      expect(again.headers.get('x-cache')).toBe('miss');
      expect((await bodyOf(again)).equals(img.blobs.get(b)!)).toBe(true);
      await m!.mirror.fills.settled();
      await eventually(async () => expect(await cacheOf(b)).toBe('hit'));
    } finally {
      sampling = false;
      await sampler;
    }
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(max);
  });

  it('relays a blob larger than max_size itself without evicting what is cached', async () => {
    setUp({ storage: { dir: 'data', max_size: String(BLOB - 1) } });
    const img = fake.add(makeImage('team/app', 'v1', [100_000, BLOB]));
    const [small] = [...img.blobs.entries()].find(([, b]) => b.length === 100_000)!;
    const [large] = layers(img) as [string];
    await start();
    expect(await cacheOf(small)).toBe('miss');
    await m!.mirror.fills.settled();
    const res = await get(large);
    expect((await bodyOf(res)).equals(img.blobs.get(large)!)).toBe(true);
    await m!.mirror.fills.settled();
    expect(await metric('acr_mirror_fills_total{result="relayed"}')).toEqual(['acr_mirror_fills_total{result="relayed"} 1']);
    expect(await cacheOf(small)).toBe('hit');
    expect(await readdir(join(m!.dir, 'data', 'tmp'))).toEqual([]);
  });
});
