// Issue 18: manifests and tags shared in the bucket. Replicas are mirrors with their own (fresh) cache directory on one
// OSS test server's bucket, pulling through one fake upstream.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OssManifestStore } from '../../src/cache/oss-manifest-store.js';
import { connectionRefused, FakeUpstream, type FakeImage, makeImage } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';
import { OSS_BUCKET, ossStoreFixture, type OssStoreFixture } from '../support/oss-store.js';

const OCI = 'application/vnd.oci.image.manifest.v1+json';
const T0 = Date.parse('2026-12-07T03:00:00Z');
const TAG_TTL_MS = 5 * 60_000;
const TAG_KEY = 'shared/tags/acr/team/app/v1';

let f: OssStoreFixture;
let fake: FakeUpstream;
let img: FakeImage;
let manifestKey: string;
let logLines: Record<string, unknown>[];
const replicas: TestMirror[] = [];

beforeEach(async () => {
  f = await ossStoreFixture();
  fake = new FakeUpstream();
  img = fake.add(makeImage('team/app', 'v1', [2000, 3000]));
  manifestKey = `shared/manifests/sha256/${img.manifestDigest.slice(7)}`;
  logLines = [];
});
afterEach(async () => {
  for (const r of replicas.splice(0)) await r.close();
  await f.cleanup();
});

/** A replica with an empty cache directory of its own on the shared bucket, its clock fixed at `now`. */
async function replica(now: number): Promise<TestMirror> {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logLines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  const r = await startTestMirror(fake, {
    now: () => now,
    log: pino({ level: 'warn' }, sink),
    config: {
      storage: { dir: 'data', backend: 'oss', oss: { bucket: OSS_BUCKET, endpoint: f.oss.endpoint, prefix: 'shared/', part_size: '100KiB' } },
      cache: { prefetch: false },
    },
    env: { ALIBABA_CLOUD_ACCESS_KEY_ID: 'store-ak', ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'store-secret' },
  });
  replicas.push(r);
  return r;
}

/** Replica A pulls the image (manifest by tag, then its blobs) and stops, its bucket writes done; its PutObjects then. */
async function pullThroughReplicaA(): Promise<number> {
  const a = await replica(T0);
  const res = await a.request('/v2/team/app/manifests/v1', { headers: { Accept: OCI } });
  expect(res.status).toBe(200);
  for (const digest of img.blobs.keys()) expect((await a.request(`/v2/team/app/blobs/${digest}`)).status).toBe(200);
  replicas.splice(replicas.indexOf(a), 1);
  await a.close();
  const puts = (await a.mirror.metrics.ossRequests.get()).values.find((v) => v.labels.operation === 'PutObject' && v.labels.result === 'ok');
  return puts?.value ?? 0;
}

const manifestRequests = () => fake.count({ host: 'registry.test', pathIncludes: '/manifests/', authorized: true });
const getManifest = (r: TestMirror, ref: string, method = 'GET') => r.request(`/v2/team/app/manifests/${ref}`, { method, headers: { Accept: OCI } });
const bucketTag = () => JSON.parse(f.oss.objectBytes(TAG_KEY)?.toString() ?? 'null') as { digest: string; mediaType: string; checkedAt: number } | null;
const logged = (msg: string) => logLines.filter((l) => l.msg === msg);

describe('manifests and tags shared in the bucket', () => {
  it('are written by the replica that fetched them: the manifest under its digest with its media type, the tag as a record', async () => {
    const puts = await pullThroughReplicaA();
    expect(f.oss.objectBytes(manifestKey)?.equals(img.manifest)).toBe(true);
    const head = await f.client.head(manifestKey);
    expect(head.res.headers['content-type']).toBe(OCI);
    expect(bucketTag()).toEqual({ digest: img.manifestDigest, mediaType: OCI, checkedAt: T0 });
    // The OSS metrics count these writes too (beside the blobs' uploads).
    expect(puts).toBe(img.blobs.size + 2);
  });

  it('are served by a fresh replica with the upstream down, by tag and by digest, with their media type', async () => {
    await pullThroughReplicaA();
    fake.intercept = connectionRefused;
    const b = await replica(T0 + 60 * 60_000); // the tag is long past tag_ttl: served stale
    for (const ref of ['v1', img.manifestDigest]) {
      const res = await getManifest(b, ref);
      expect(res.status, ref).toBe(200);
      expect(res.headers.get('content-type'), ref).toBe(OCI);
      expect(res.headers.get('docker-content-digest'), ref).toBe(img.manifestDigest);
      expect(Buffer.from(await res.arrayBuffer()).equals(img.manifest), ref).toBe(true);
    }
    const head = await getManifest(b, 'v1', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.headers.get('docker-content-digest')).toBe(img.manifestDigest);
    for (const [digest, bytes] of img.blobs) {
      const blob = await b.request(`/v2/team/app/blobs/${digest}`);
      expect(Buffer.from(await blob.arrayBuffer()).equals(bytes)).toBe(true);
    }
    // Kept in the replica's own SQLite: the bucket is not asked again.
    const gets = f.oss.faults.count('GetObject');
    expect((await getManifest(b, 'v1')).status).toBe(200);
    expect((await getManifest(b, img.manifestDigest)).status).toBe(200);
    expect(f.oss.faults.count('GetObject')).toBe(gets);
  });

  it('count as checked when the bucket says: within tag_ttl the upstream is not asked, past it the tag is revalidated and rewritten', async () => {
    await pullThroughReplicaA();
    const before = manifestRequests();
    const b = await replica(T0 + TAG_TTL_MS - 1000);
    const fresh = await getManifest(b, 'v1');
    expect(fresh.status).toBe(200);
    expect(Buffer.from(await fresh.arrayBuffer()).equals(img.manifest)).toBe(true);
    expect(manifestRequests()).toBe(before);

    const later = T0 + TAG_TTL_MS + 1000;
    const c = await replica(later);
    const revalidated = await getManifest(c, 'v1');
    expect(revalidated.status).toBe(200);
    expect(Buffer.from(await revalidated.arrayBuffer()).equals(img.manifest)).toBe(true);
    // One HEAD: the digest it names is in the bucket, so the manifest itself is not fetched again.
    expect(manifestRequests()).toBe(before + 1);
    expect(fake.count({ host: 'registry.test', method: 'HEAD', pathIncludes: '/manifests/v1', authorized: true })).toBe(1);
    replicas.splice(replicas.indexOf(c), 1);
    await c.close();
    expect(bucketTag()).toEqual({ digest: img.manifestDigest, mediaType: OCI, checkedAt: later });
  });

  it('never serves a manifest object whose bytes do not match its digest, and replaces it once fetched again', async () => {
    await pullThroughReplicaA();
    const other = makeImage('team/app', 'v1', [100], 2).manifest;
    await f.client.put(manifestKey, other, { mime: OCI });
    fake.intercept = connectionRefused;
    const b = await replica(T0 + 1000);
    for (const ref of ['v1', img.manifestDigest]) {
      const res = await getManifest(b, ref);
      expect(res.status, ref).not.toBe(200);
      expect(Buffer.from(await res.arrayBuffer()).includes(other), ref).toBe(false);
    }
    expect(logged('wrong object in the bucket: ignored, not served').length).toBeGreaterThan(0);

    fake.intercept = null;
    const res = await getManifest(b, img.manifestDigest);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(img.manifest)).toBe(true);
    replicas.splice(replicas.indexOf(b), 1);
    await b.close();
    expect(f.oss.objectBytes(manifestKey)?.equals(img.manifest)).toBe(true);
  });

  it('ignores a tag object that is not a tag record, asks the upstream and rewrites it', async () => {
    await pullThroughReplicaA();
    await f.client.put(TAG_KEY, Buffer.from('{"digest":"sha256:nope"}'), { mime: 'application/json' });
    const before = manifestRequests();
    const b = await replica(T0 + 1000);
    const res = await getManifest(b, 'v1');
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(img.manifest)).toBe(true);
    expect(manifestRequests()).toBeGreaterThan(before);
    expect(logged('wrong object in the bucket: ignored, not served').map((l) => l.key)).toEqual([TAG_KEY]);
    replicas.splice(replicas.indexOf(b), 1);
    await b.close();
    expect(bucketTag()).toEqual({ digest: img.manifestDigest, mediaType: OCI, checkedAt: T0 + 1000 });
  });

  it('drops the tag record once the upstream says the tag is gone', async () => {
    await pullThroughReplicaA();
    fake.images.splice(0);
    const b = await replica(T0 + TAG_TTL_MS + 1000);
    expect((await getManifest(b, 'v1')).status).toBe(404);
    replicas.splice(replicas.indexOf(b), 1);
    await b.close();
    expect(f.oss.objectBytes(TAG_KEY)).toBeUndefined();
    expect(f.oss.objectBytes(manifestKey)?.equals(img.manifest)).toBe(true);
  });

  it('takes a bucket that does not answer as a miss: the manifest comes from the upstream', async () => {
    const a = await replica(T0);
    await f.oss.close();
    for (const ref of ['v1', img.manifestDigest]) {
      const res = await getManifest(a, ref);
      expect(res.status, ref).toBe(200);
      expect(Buffer.from(await res.arrayBuffer()).equals(img.manifest), ref).toBe(true);
    }
    expect(logged('bucket lookup failed: taken as a miss')[0]?.err).toMatch(/ECONNREFUSED/);
  });

  it('answers the client when the bucket cannot be written, and logs it at warn', async () => {
    f.oss.faults.failNext(100, (r) => r.operation === 'PutObject' && (r.key.startsWith('shared/manifests/') || r.key.startsWith('shared/tags/')));
    const a = await replica(T0);
    const res = await getManifest(a, 'v1');
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(img.manifest)).toBe(true);
    replicas.splice(replicas.indexOf(a), 1);
    await a.close();
    expect(f.oss.keys().filter((k) => !k.startsWith('shared/blobs/'))).toEqual([]);
    const warnings = logged('bucket not written; the client was answered');
    expect(warnings.length).toBeGreaterThan(0);
    expect(warnings[0]!.err).toMatch(/InternalError/);
    expect(JSON.stringify(logLines)).not.toContain('store-secret');
  });
});

describe('OssManifestStore tag keys', () => {
  it('keep nested repository names and every tag character, and refuse names that could make keys ambiguous', () => {
    const store = new OssManifestStore({ ...f.options, prefix: 'p' });
    expect(store.tagKey('acr', 'team/sub/app', 'v1.0_rc-1')).toBe('p/tags/acr/team/sub/app/v1.0_rc-1');
    expect(store.tagKey('acr', 'team/../app', 'v1')).toBeNull();
    expect(store.tagKey('acr', 'team/app', 'a/b')).toBeNull();
    expect(store.tagKey('acr', 'team/app', '..')).toBeNull();
    expect(store.tagKey('a/b', 'app', 'v1')).toBeNull();
  });
});
