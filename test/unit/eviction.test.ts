import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeUpstream, makeImage, type FakeImage } from '../support/fake-upstream.js';
import { eventually } from '../support/eventually.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';

let m: TestMirror | undefined;
afterEach(async () => {
  await m?.close();
  m = undefined;
});

const KB = 1000;

async function start(fake: FakeUpstream, clock: { t: number }, maxSize = '1MB') {
  m = await startTestMirror(fake, { now: () => clock.t, config: { storage: { dir: 'data', max_size: maxSize } } });
  return m;
}

async function pull(mirror: TestMirror, img: FakeImage): Promise<void> {
  const res = await mirror.request(`/v2/${img.repo}/manifests/${img.tag}`);
  expect(res.status).toBe(200);
  await res.arrayBuffer();
  for (const d of img.blobs.keys()) await (await mirror.request(`/v2/${img.repo}/blobs/${d}`)).arrayBuffer();
  await mirror.mirror.fills.settled();
}

const cached = (mirror: TestMirror, digest: string) => existsSync(join(mirror.dir, 'data', 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7)));
const layers = (img: FakeImage) => [...img.blobs.entries()].filter(([, b]) => b.length >= 100 * KB).map(([d]) => d);
const tagRows = (mirror: TestMirror) => (mirror.mirror.db.prepare('SELECT repo, tag FROM tags ORDER BY repo').all() as { repo: string; tag: string }[]).map((r) => `${r.repo}:${r.tag}`);

describe('eviction (storage.max_size)', () => {
  it('evicts the least recently used blobs with their manifests and tags, never beyond the limit', async () => {
    const fake = new FakeUpstream();
    const clock = { t: 1_000_000 };
    const a = fake.add(makeImage('team/a', 'v1', [400 * KB], 1));
    const b = fake.add(makeImage('team/b', 'v1', [400 * KB], 2));
    const c = fake.add(makeImage('team/c', 'v1', [400 * KB], 3));
    const mirror = await start(fake, clock);
    await pull(mirror, a);
    clock.t += 1000;
    await pull(mirror, b);
    clock.t += 1000;
    await pull(mirror, c); // 1.2 MB > 1 MB: evict down to 0.9 MB, oldest first
    await eventually(() => expect(layers(a).every((d) => !cached(mirror, d))).toBe(true));
    expect([...layers(b), ...layers(c)].every((d) => cached(mirror, d))).toBe(true);
    expect(tagRows(mirror)).toEqual(['team/b:v1', 'team/c:v1']);
    // the run reports once it has finished
    let metrics = '';
    await eventually(async () => {
      metrics = await (await mirror.request('/metrics')).text();
      expect(metrics).toMatch(/acr_mirror_evictions_total\{kind="blob"\} [1-9]/);
    });
    expect(metrics).toContain('acr_mirror_cache_limit_bytes 1000000');
    expect(Number(/acr_mirror_cache_size_bytes (\d+)/.exec(metrics)![1])).toBeLessThanOrEqual(900_000);

    // the evicted image is simply fetched again
    const again = await mirror.request('/v2/team/a/manifests/v1');
    expect(again.headers.get('x-cache')).toBe('miss');
  });

  it('keeps the blobs of recently served manifests: recency follows the image, not only the blob', async () => {
    const fake = new FakeUpstream();
    const clock = { t: 1_000_000 };
    const a = fake.add(makeImage('team/a', 'v1', [400 * KB], 1));
    const b = fake.add(makeImage('team/b', 'v1', [400 * KB], 2));
    const c = fake.add(makeImage('team/c', 'v1', [400 * KB], 3));
    const mirror = await start(fake, clock);
    await pull(mirror, a);
    clock.t += 1000;
    await pull(mirror, b);
    clock.t += 1000;
    // a node checks image a again (manifest only, its layers are on the node already)
    await (await mirror.request('/v2/team/a/manifests/v1')).arrayBuffer();
    clock.t += 1000;
    await pull(mirror, c);
    await eventually(() => expect(layers(b).every((d) => !cached(mirror, d))).toBe(true));
    expect(layers(a).every((d) => cached(mirror, d))).toBe(true);
    expect(tagRows(mirror)).toEqual(['team/a:v1', 'team/c:v1']);
  });

  it('never deletes a blob while a client is reading it', async () => {
    const fake = new FakeUpstream();
    const clock = { t: 1000 };
    // layers larger than the 1 MiB read buffer, so an unconsumed response keeps its file open
    const a = fake.add(makeImage('team/a', 'v1', [4000 * KB], 1));
    const b = fake.add(makeImage('team/b', 'v1', [4000 * KB], 2));
    const c = fake.add(makeImage('team/c', 'v1', [4000 * KB], 3));
    const d = fake.add(makeImage('team/d', 'v1', [4000 * KB], 4));
    const mirror = await start(fake, clock, '9MB');
    await pull(mirror, a);
    const [layerA] = layers(a);
    const reading = await mirror.request(`/v2/team/a/blobs/${layerA}`); // a's layer is the oldest, and open
    clock.t = 2_000_000;
    await pull(mirror, b);
    clock.t = 3_000_000;
    await pull(mirror, c); // over the limit: a's layer is first in line but being read, so b's goes
    await eventually(() => expect(layers(b).every((x) => !cached(mirror, x))).toBe(true));
    expect(cached(mirror, layerA!)).toBe(true);
    expect(Buffer.from(await reading.arrayBuffer()).equals(a.blobs.get(layerA!)!)).toBe(true);

    clock.t = 4_000_000;
    await pull(mirror, d); // the read is over: now a's layer can go
    await eventually(() => expect(cached(mirror, layerA!)).toBe(false));
    expect(tagRows(mirror)).toEqual(['team/c:v1', 'team/d:v1']);
  });
});
