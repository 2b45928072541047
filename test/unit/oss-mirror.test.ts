import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeUpstream, makeImage } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';
import { OSS_BUCKET, ossStoreFixture, type OssStoreFixture } from '../support/oss-store.js';

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
  m = await startTestMirror(fake, {
    config: { storage: { dir: 'data', backend: 'oss', oss: { bucket: OSS_BUCKET, endpoint: f.oss.endpoint, prefix: 'mirror-a/', part_size: '100KiB' } } },
    env: { ALIBABA_CLOUD_ACCESS_KEY_ID: 'store-ak', ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'store-secret' },
  });
});
afterEach(async () => {
  await m.close();
  await f.cleanup();
});

const upstreamBlobGets = () => fake.count({ method: 'GET', pathIncludes: `/blobs/${digest}` });

describe('a mirror with storage.backend = "oss"', () => {
  it('fills a blob into the bucket and serves it, whole and ranged, from there afterwards', async () => {
    const first = await m.request(`/v2/team/app/blobs/${digest}`);
    expect(first.status).toBe(200);
    expect(Buffer.from(await first.arrayBuffer()).equals(layer)).toBe(true);
    await m.mirror.fills.settled();
    expect(f.oss.objectBytes(`mirror-a/blobs/sha256/${digest.slice(7)}`)?.equals(layer)).toBe(true);
    expect(f.oss.openUploads()).toEqual([]);
    const fetched = upstreamBlobGets();
    const gets = f.oss.faults.count('GetObject');

    const again = await m.request(`/v2/team/app/blobs/${digest}`);
    expect(Buffer.from(await again.arrayBuffer()).equals(layer)).toBe(true);
    const ranged = await m.request(`/v2/team/app/blobs/${digest}`, { headers: { Range: 'bytes=100000-250000' } });
    expect(ranged.status).toBe(206);
    expect(Buffer.from(await ranged.arrayBuffer()).equals(layer.subarray(100_000, 250_001))).toBe(true);
    expect(upstreamBlobGets()).toBe(fetched);
    expect(f.oss.faults.count('GetObject') - gets).toBe(2);
    const metrics = await (await m.request('/metrics')).text();
    expect(metrics).toContain(`acr_mirror_oss_bytes_total{direction="sent"} ${layer.length}`);
    expect(metrics).toContain('acr_mirror_oss_requests_total{operation="CompleteMultipartUpload",result="ok"} 1');
  });

  it('reports the bucket in /readyz, and not ready once OSS does not answer', async () => {
    const ready = await m.request('/readyz');
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as { checks: Record<string, string> }).checks).toEqual({ database: 'ok', bucket: 'ok' });
    await f.oss.close();
    const down = await m.request('/readyz');
    expect(down.status).toBe(503);
    const downBody = (await down.json()) as { checks: Record<string, string> };
    expect(downBody.checks.bucket).toBe('error: ECONNREFUSED');
  });

  it('a blob gone from the bucket (evicted by another replica) is a miss: the next pull fetches it again', async () => {
    expect((await m.request(`/v2/team/app/blobs/${digest}`)).status).toBe(200);
    await m.mirror.fills.settled();
    const key = `mirror-a/blobs/sha256/${digest.slice(7)}`;
    await f.client.delete(key);
    const fetched = upstreamBlobGets();

    const again = await m.request(`/v2/team/app/blobs/${digest}`);
    expect(again.status).toBe(200);
    expect(Buffer.from(await again.arrayBuffer()).equals(layer)).toBe(true);
    expect(upstreamBlobGets()).toBeGreaterThan(fetched);
    await m.mirror.fills.settled();
    expect(f.oss.objectBytes(key)?.equals(layer)).toBe(true);
  });
});
