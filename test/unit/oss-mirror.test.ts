import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { eventually } from '../support/eventually.js';
import { FakeUpstream, makeImage } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';
import { OSS_ENV, ossMirrorConfig, resolveLocalhostSubdomains } from '../support/oss-mirror.js';
import { OSS_BUCKET, ossStoreFixture, type OssStoreFixture } from '../support/oss-store.js';

resolveLocalhostSubdomains();

let f: OssStoreFixture;
let fake: FakeUpstream;
let m: TestMirror;
let digest: string;
let layer: Buffer;

beforeEach(async () => {
  f = await ossStoreFixture();
  fake = new FakeUpstream();
  const img = fake.add(makeImage('team/app', 'v1', [350 * 1024]));
  [digest, layer] = [...img.blobs.entries()].find(([, b]) => b.length === 350 * 1024)!;
  m = await startTestMirror(fake, { config: ossConfig(), env: OSS_ENV });
});
afterEach(async () => {
  await m.close();
  await f.cleanup();
});

const ossConfig = (storage: Record<string, unknown> = {}, oss: Record<string, unknown> = {}) => ossMirrorConfig(f, storage, oss);

const upstreamBlobGets = () => fake.count({ method: 'GET', pathIncludes: `/blobs/${digest}` });

describe('a mirror with storage.backend = "oss"', () => {
  it('fills a blob into the bucket and the local disk, and serves it, whole and ranged, from the disk afterwards', async () => {
    const first = await m.request(`/v2/team/app/blobs/${digest}`);
    expect(first.status).toBe(200);
    expect(Buffer.from(await first.arrayBuffer()).equals(layer)).toBe(true);
    await m.mirror.fills.settled();
    expect(f.oss.objectBytes(`mirror-a/blobs/sha256/${digest.slice(7)}`)?.equals(layer)).toBe(true);
    expect(f.oss.openUploads()).toEqual([]);
    const fetched = upstreamBlobGets();
    const bucketReads = () => f.oss.faults.count('GetObject') + f.oss.faults.count('HeadObject');
    const reads = bucketReads();

    const again = await m.request(`/v2/team/app/blobs/${digest}`);
    expect(Buffer.from(await again.arrayBuffer()).equals(layer)).toBe(true);
    const ranged = await m.request(`/v2/team/app/blobs/${digest}`, { headers: { Range: 'bytes=100000-250000' } });
    expect(ranged.status).toBe(206);
    expect(Buffer.from(await ranged.arrayBuffer()).equals(layer.subarray(100_000, 250_001))).toBe(true);
    expect(upstreamBlobGets()).toBe(fetched);
    expect(bucketReads()).toBe(reads);
    const metrics = await (await m.request('/metrics')).text();
    expect(metrics).toContain(`acr_mirror_oss_bytes_total{direction="sent"} ${layer.length}`);
    expect(metrics).toContain('acr_mirror_oss_requests_total{operation="CompleteMultipartUpload",result="ok"} 1');
  });

  it('serves a blob another replica cached from the bucket on a fresh replica (empty disk), then from its own disk', async () => {
    await (await m.request(`/v2/team/app/blobs/${digest}`)).arrayBuffer();
    await m.mirror.fills.settled();
    const fetched = upstreamBlobGets();
    const b = await startTestMirror(fake, { config: ossConfig(), env: OSS_ENV });
    try {
      const first = await b.request(`/v2/team/app/blobs/${digest}`);
      expect(first.headers.get('x-cache')).toBe('hit');
      expect(Buffer.from(await first.arrayBuffer()).equals(layer)).toBe(true);
      await eventually(async () => expect(b.mirror.db.prepare('SELECT size FROM blobs WHERE digest = ?').get(digest)).toEqual({ size: layer.length }));
      const gets = f.oss.faults.count('GetObject');
      const second = await b.request(`/v2/team/app/blobs/${digest}`);
      expect(Buffer.from(await second.arrayBuffer()).equals(layer)).toBe(true);
      expect(f.oss.faults.count('GetObject')).toBe(gets);
      expect(upstreamBlobGets()).toBe(fetched);
    } finally {
      await b.close();
    }
  });

  it('evicts local copies under storage.max_size, keeping the bucket\'s objects and the manifests, and serves them from the bucket again', async () => {
    const img = fake.add(makeImage('team/big', 'v1', [300 * 1024, 300 * 1024], 7));
    const [one, two] = [...img.blobs.keys()].filter((d) => img.blobs.get(d)!.length === 300 * 1024);
    const small = await startTestMirror(fake, { config: ossConfig({ max_size: '500KiB' }), env: OSS_ENV });
    try {
      expect((await small.request('/v2/team/big/manifests/v1')).status).toBe(200);
      for (const d of [one, two]) {
        expect((await small.request(`/v2/team/big/blobs/${d}`)).status).toBe(200);
        await small.mirror.fills.settled();
      }
      await eventually(() => expect(small.mirror.db.prepare('SELECT digest FROM blobs').all()).toEqual([{ digest: two }]));
      expect(f.oss.faults.count('DeleteObject')).toBe(0);
      // The evicted layer is still in the bucket: its image's manifest and tag stay cached.
      expect(small.mirror.db.prepare('SELECT digest FROM tags').all()).toEqual([{ digest: img.manifestDigest }]);
      expect(f.oss.keys().filter((k) => k.startsWith('mirror-a/blobs/'))).toEqual([one, two].map((d) => `mirror-a/blobs/sha256/${d!.slice(7)}`).sort());
      const upstream = fake.count({ method: 'GET', pathIncludes: `/blobs/${one}` });
      const again = await small.request(`/v2/team/big/blobs/${one}`);
      expect(Buffer.from(await again.arrayBuffer()).equals(img.blobs.get(one!)!)).toBe(true);
      expect(fake.count({ method: 'GET', pathIncludes: `/blobs/${one}` })).toBe(upstream);
    } finally {
      await small.close();
    }
  });

  it('reports the bucket in /readyz, and stays ready once OSS does not answer (the replica still serves)', async () => {
    const ready = await m.request('/readyz');
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as { checks: Record<string, string> }).checks).toEqual({ database: 'ok', cacheDir: 'ok', bucket: 'ok' });
    await f.oss.close();
    const down = await m.request('/readyz');
    expect(down.status).toBe(200);
    const downBody = (await down.json()) as { status: string; checks: Record<string, string> };
    expect(downBody).toMatchObject({ status: 'ready', checks: { database: 'ok', cacheDir: 'ok', bucket: 'error: ECONNREFUSED' } });
  });

  it('a blob gone from the bucket (evicted by another replica) is a miss: a replica without a local copy fetches it again', async () => {
    expect((await m.request(`/v2/team/app/blobs/${digest}`)).status).toBe(200);
    await m.mirror.fills.settled();
    const key = `mirror-a/blobs/sha256/${digest.slice(7)}`;
    await f.client.delete(key);
    const fetched = upstreamBlobGets();
    const b = await startTestMirror(fake, { config: ossConfig(), env: OSS_ENV });
    try {
      const again = await b.request(`/v2/team/app/blobs/${digest}`);
      expect(again.status).toBe(200);
      expect(Buffer.from(await again.arrayBuffer()).equals(layer)).toBe(true);
      expect(upstreamBlobGets()).toBeGreaterThan(fetched);
      await b.mirror.fills.settled();
      expect(f.oss.objectBytes(key)?.equals(layer)).toBe(true);
    } finally {
      await b.close();
    }
  });
});

const blobPath = () => `/v2/team/app/blobs/${digest}`;

async function cached(): Promise<void> {
  const first = await m.request(blobPath());
  expect(first.status).toBe(200);
  expect(Buffer.from(await first.arrayBuffer()).equals(layer)).toBe(true);
  await m.mirror.fills.settled();
}

describe('storage.oss.redirect = true', () => {
  beforeEach(async () => {
    await m.close();
    m = await startTestMirror(fake, { config: ossConfig({}, { redirect: true }), env: OSS_ENV });
  });

  it('answers a GET of a blob in the bucket with a 307 to a presigned URL that serves its bytes until it expires', async () => {
    await cached();
    const answer = await m.request(blobPath(), { redirect: 'manual' });
    expect(answer.status).toBe(307);
    expect(answer.headers.get('docker-content-digest')).toBe(digest);
    expect(answer.headers.get('cache-control')).toBeNull();
    const location = answer.headers.get('location')!;
    expect(location).toMatch(new RegExp(`^http://${OSS_BUCKET}\\.localhost:\\d+/mirror-a/blobs/sha256/${digest.slice(7)}\\?OSSAccessKeyId=store-ak&Expires=\\d+&Signature=`));
    const fetched = await fetch(location);
    expect(fetched.status).toBe(200);
    expect(Buffer.from(await fetched.arrayBuffer()).equals(layer)).toBe(true);

    f.oss.now = () => Date.now() + 6 * 60_000;
    const expired = await fetch(location);
    expect(expired.status).toBe(403);
    expect(await expired.text()).toMatch(/AccessDenied|expired/i);
  });

  it('redirects a ranged GET too (the URL honours Range), and answers HEAD itself', async () => {
    await cached();
    const answer = await m.request(blobPath(), { headers: { Range: 'bytes=1000-99999' }, redirect: 'manual' });
    expect(answer.status).toBe(307);
    const ranged = await fetch(answer.headers.get('location')!, { headers: { Range: 'bytes=1000-99999' } });
    expect(ranged.status).toBe(206);
    expect(Buffer.from(await ranged.arrayBuffer()).equals(layer.subarray(1000, 100_000))).toBe(true);
    const head = await m.request(blobPath(), { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(layer.length));
  });

  it('serves a blob that is not in the bucket yet (a miss, or only in a running fill) itself', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    fake.ossBody = (_digest, body) =>
      new ReadableStream<Uint8Array>({
        async start(c) {
          c.enqueue(new Uint8Array(body.subarray(0, 1000)));
          await gate;
          c.enqueue(new Uint8Array(body.subarray(1000)));
          c.close();
        },
      });
    const first = m.request(blobPath(), { redirect: 'manual' });
    await eventually(() => expect(m.mirror.fills.size).toBe(1));
    const joined = m.request(blobPath(), { redirect: 'manual' });
    await eventually(async () => expect((await m.mirror.metrics.fillJoins.get()).values[0]?.value).toBe(1));
    release();
    for (const answer of await Promise.all([first, joined])) {
      expect(answer.status).toBe(200);
      expect(Buffer.from(await answer.arrayBuffer()).equals(layer)).toBe(true);
    }
    await m.mirror.fills.settled();
    expect((await m.request(blobPath(), { redirect: 'manual' })).status).toBe(307);
  });
});
