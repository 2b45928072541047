import { existsSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeUpstream, type FakeImage, makeImage, makeIndex } from '../support/fake-upstream.js';
import { eventually } from '../support/eventually.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';

const OCI = 'application/vnd.oci.image.manifest.v1+json';
let fake: FakeUpstream;
let m: TestMirror;
let img: FakeImage;
let release: () => void;
let gate: Promise<void>;

beforeEach(() => {
  fake = new FakeUpstream();
  img = fake.add(makeImage('team/app', 'v1', [300_000, 200_000, 100_000], 5));
  gate = new Promise<void>((resolve) => (release = resolve));
});
afterEach(async () => {
  release();
  await m.close();
});

const start = async (cache: Record<string, unknown>) => (m = await startTestMirror(fake, { config: { cache } }));
const blobFile = (digest: string) => join(m.dir, 'data', 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));
const ossGets = (digest: string) => fake.calls.filter((c) => c.host === 'oss.test' && c.path.includes(digest)).length;
const prefetches = async (result: string) =>
  (await m.mirror.metrics.prefetches.get()).values.find((v) => v.labels.result === result)?.value ?? 0;
/** The OSS stand-in holds every blob body back until release(). */
const holdBodies = () => {
  fake.ossBody = (_d, body, call) => {
    const range = /^bytes=(\d+)-(\d*)$/.exec(call.range ?? '');
    const part = body.subarray(range ? Number(range[1]) : 0, range?.[2] ? Number(range[2]) + 1 : body.length);
    return new ReadableStream({
      async pull(c) {
        await gate;
        c.enqueue(new Uint8Array(part));
        c.close();
      },
    });
  };
};
const getManifest = async (ref = 'v1') => {
  const res = await m.request(`/v2/team/app/manifests/${ref}`, { headers: { accept: OCI } });
  expect(res.status).toBe(200);
  await res.arrayBuffer();
};

describe('layers fetched ahead', () => {
  it('fills the config and every layer of an image manifest a client is answered', async () => {
    await start({});
    await getManifest();
    await m.mirror.fills.settled();
    for (const digest of img.blobs.keys()) {
      expect(existsSync(blobFile(digest)), digest).toBe(true);
      expect(ossGets(digest)).toBe(1);
    }
    expect(await prefetches('started')).toBe(4);
  });

  it('lets a client GET of a layer join its prefetch: the upstream sends it once', async () => {
    await start({});
    holdBodies();
    await getManifest();
    const [digest, bytes] = [...img.blobs.entries()].find(([, b]) => b.length === 300_000)!;
    await eventually(() => expect(ossGets(digest)).toBe(1));
    const res = await m.request(`/v2/team/app/blobs/${digest}`);
    expect(res.headers.get('x-cache')).toBe('joined');
    release();
    expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
    await m.mirror.fills.settled();
    expect(ossGets(digest)).toBe(1);
  });

  it('never makes a client fill wait behind prefetches', async () => {
    await start({ prefetch_concurrency: 1 });
    holdBodies();
    await getManifest();
    // The config's prefetch holds the one slot; the layers wait for it.
    await eventually(() => expect(fake.calls.filter((c) => c.host === 'oss.test')).toHaveLength(1));
    const [digest, bytes] = [...img.blobs.entries()].find(([, b]) => b.length === 100_000)!;
    fake.ossBody = null;
    const res = await m.request(`/v2/team/app/blobs/${digest}`);
    expect(res.headers.get('x-cache')).toBe('miss');
    expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
    release();
    await m.mirror.fills.settled();
    expect(ossGets(digest)).toBe(1);
  });

  it('drops prefetches quietly while the cache cannot be written', async () => {
    await start({});
    const tmp = join(m.dir, 'data', 'tmp');
    await rename(tmp, `${tmp}-away`);
    try {
      await getManifest();
      await m.mirror.fills.settled();
    } finally {
      await rename(`${tmp}-away`, tmp);
    }
    expect(await prefetches('dropped')).toBe(4);
    expect(fake.calls.filter((c) => c.host === 'oss.test')).toHaveLength(0);
  });

  it('drops prefetches that find no room under storage.max_size quietly: not relayed to nobody, not a failed fill', async () => {
    const levels: number[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        levels.push((JSON.parse(chunk.toString()) as { level: number }).level);
        done();
      },
    });
    m = await startTestMirror(fake, {
      config: { cache: { prefetch_concurrency: 1 }, storage: { dir: 'data', max_size: '150000' } },
      log: pino({ level: 'debug' }, sink),
    });
    await getManifest();
    await m.mirror.fills.settled();
    // The config and the 100 KB layer fit; the 300 KB and 200 KB layers cannot.
    for (const [digest, bytes] of img.blobs) expect(existsSync(blobFile(digest)), digest).toBe(bytes.length <= 100_000);
    expect(await prefetches('dropped')).toBe(2);
    const fills = (await m.mirror.metrics.fills.get()).values.map((v) => [v.labels.result, v.value]);
    expect(Object.fromEntries(fills)).toEqual({ committed: 2, dropped: 2 });
    expect(levels.filter((level) => level >= 40)).toEqual([]);
  });

  it('starts nothing with cache.prefetch = false, nor for an index', async () => {
    await start({ prefetch: false });
    await getManifest();
    await m.mirror.fills.settled();
    expect(fake.calls.filter((c) => c.host === 'oss.test')).toHaveLength(0);
    await m.close();

    const { index } = makeIndex('team/app', 'multi', ['amd64', 'arm64'], [10_000], 9);
    fake.add(index);
    await start({});
    const res = await m.request('/v2/team/app/manifests/multi', { headers: { accept: index.mediaType } });
    expect(res.status).toBe(200);
    await m.mirror.fills.settled();
    expect(fake.calls.filter((c) => c.host === 'oss.test')).toHaveLength(0);
  });
});
