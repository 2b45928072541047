// What the admin sees: cached images with platforms, size and usage; cache statistics; removing a tag; the page.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CacheStats, CachedImage } from '../../src/admin/inventory.js';
import { ADMIN_ENV, bearer, finishedJob, startWarm } from '../support/admin.js';
import { FakeUpstream, type FakeImage, makeImage, makeIndex } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';

let fake: FakeUpstream;
let m: TestMirror;
let multi: { index: FakeImage; children: FakeImage[] };
let single: FakeImage;

beforeEach(async () => {
  fake = new FakeUpstream();
  multi = makeIndex('team/multi', 'v1', ['amd64', 'arm64'], [20_000, 5_000], 3);
  for (const image of [multi.index, ...multi.children]) fake.add(image);
  single = fake.add(makeImage('team/single', '1.0', [7000], 4));
  m = await startTestMirror(fake, { env: ADMIN_ENV, config: { storage: { dir: 'data', max_size: '1GiB' } } });
  await finishedJob(m, (await startWarm(m, { images: ['team/multi:v1', 'team/single:1.0'], platforms: ['linux/arm64'] })).id);
});
afterEach(async () => {
  await m.close();
});

const sizeOf = (image: FakeImage) => [...image.blobs.values()].reduce((n, b) => n + b.length, 0);
const get = async <T>(path: string) => (await (await m.request(path, { headers: bearer() })).json()) as T;

describe('GET /admin/images', () => {
  it('lists cached tags with digest, cached platforms, size, hits and last pull', async () => {
    await m.request('/v2/team/single/manifests/1.0');
    await m.request('/v2/team/single/manifests/1.0', { method: 'HEAD' });
    await m.request(`/v2/team/single/manifests/${single.manifestDigest}`); // by digest: not a tag request
    const { images } = await get<{ images: CachedImage[] }>('/admin/images');
    expect(images).toEqual([
      {
        upstream: 'acr',
        repository: 'team/multi',
        tag: 'v1',
        digest: multi.index.manifestDigest,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        platforms: ['linux/arm64'],
        uncachedPlatforms: ['linux/amd64'],
        size: sizeOf(multi.children[1]!),
        referrers: 0,
        checkedAt: expect.any(String),
        hits: 0,
        lastPulled: null,
      },
      expect.objectContaining({
        repository: 'team/single',
        tag: '1.0',
        digest: single.manifestDigest,
        platforms: [],
        uncachedPlatforms: [],
        size: sizeOf(single),
        referrers: 0,
        hits: 2,
        lastPulled: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      }),
    ]);
  });
});

describe('GET /admin/stats', () => {
  it('reports cache size against the limit, blob count, hit ratio, bytes served and pulled, fills in flight', async () => {
    const blob = [...single.blobs.keys()][0]!;
    await (await m.request(`/v2/team/single/blobs/${blob}`)).arrayBuffer();
    await m.request('/v2/team/single/manifests/1.0');
    const stats = await get<CacheStats>('/admin/stats');
    const cached = sizeOf(multi.children[1]!) + sizeOf(single);
    expect(stats.cache).toEqual({ bytes: cached, limit: 1024 ** 3, free: expect.any(Number), blobs: 5, manifests: 3, tags: 2 });
    expect(stats.requests).toEqual({ hit: 2, miss: 0, joined: 0, stale: 0, hitRatio: 1 });
    expect(stats.bytes.served).toBe(single.blobs.get(blob)!.length + single.manifest.length);
    expect(stats.bytes.upstream).toBeGreaterThanOrEqual(cached);
    expect(stats.fillsInFlight).toBe(0);
    expect(stats.warmJobsRunning).toBe(0);
  });
});

describe('DELETE /admin/images/<name>:<tag>', () => {
  it('removes the tag and leaves its blobs to eviction', async () => {
    const res = await m.request('/admin/images/team/single:1.0', { method: 'DELETE', headers: bearer() });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ deleted: { upstream: 'acr', repository: 'team/single', tag: '1.0', digest: single.manifestDigest } });
    const { images } = await get<{ images: CachedImage[] }>('/admin/images');
    expect(images.map((i) => i.repository)).toEqual(['team/multi']);
    for (const digest of single.blobs.keys()) {
      expect(existsSync(join(m.dir, 'data', 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7)))).toBe(true);
    }
    const again = await m.request('/admin/images/team/single:1.0', { method: 'DELETE', headers: bearer() });
    expect(again.status).toBe(404);
    // the next pull asks the upstream for the tag again
    const before = fake.count({ host: 'registry.test', pathIncludes: '/manifests/1.0' });
    expect((await m.request('/v2/team/single/manifests/1.0')).status).toBe(200);
    expect(fake.count({ host: 'registry.test', pathIncludes: '/manifests/1.0' })).toBeGreaterThan(before);
  });

  it('refuses digests, names without a tag and unknown upstreams', async () => {
    const del = (path: string) => m.request(path, { method: 'DELETE', headers: bearer() });
    expect((await del(`/admin/images/team/single@${single.manifestDigest}`)).status).toBe(400);
    expect((await del('/admin/images/team/single')).status).toBe(400);
    expect((await del('/admin/images/team/single:1.0?upstream=other')).status).toBe(404);
    expect((await del('/admin/images/Team/x:1')).status).toBe(400);
  });
});

describe('GET /admin/ui', () => {
  it('renders the images, disk usage against the limit, hit ratio and the warm form, with a strict CSP', async () => {
    const res = await m.request('/admin/ui', { headers: bearer() });
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy')!;
    const nonce = /script-src 'nonce-([^']+)'/.exec(csp)![1]!;
    expect(csp).toContain("default-src 'none'");
    const html = await res.text();
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).toContain('<tr data-ref="team/multi:v1" data-upstream="acr">');
    expect(html).toContain('<tr data-ref="team/single:1.0" data-upstream="acr">');
    expect(html).toContain('linux/arm64<span class="muted"> (not cached: linux/amd64)</span>');
    expect(html).toMatch(/<meter id="disk-usage" min="0" max="1073741824" value="\d+"/);
    expect(html).toContain('of 1.00 GiB');
    expect(html).toContain('id="warm-form"');
    expect(html).toContain(`<script nonce="${nonce}">`);
    expect(html).toContain('imagesTableScript');
    expect(html).toContain('warmFormScript');
  });
});
