import { afterEach, describe, expect, it } from 'vitest';
import { connectionRefused, FakeUpstream, makeImage } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';

const errorOf = async (res: Response) => ((await res.json()) as { errors: { code: string; message: string }[] }).errors[0]!;

let m: TestMirror | undefined;
afterEach(async () => {
  await m?.close();
  m = undefined;
});

describe('circuit breaker', () => {
  it('after repeated failures answers from cache at once without contacting the upstream, until a probe succeeds', async () => {
    const fake = new FakeUpstream();
    let clock = Date.now();
    const img = fake.add(makeImage('team/app', 'v1', [100]));
    m = await startTestMirror(fake, {
      now: () => clock,
      config: { cache: { tag_ttl: '1s' } },
      upstream: { breaker_threshold: 2, breaker_cooldown: '10s', retries: 0 },
    });
    await (await m.request('/v2/team/app/manifests/v1')).arrayBuffer();

    fake.intercept = connectionRefused;
    for (const tag of ['a', 'b']) expect((await m.request(`/v2/team/app/manifests/${tag}`)).status).toBe(503);
    const calls = fake.calls.length;
    const down = await m.request('/v2/team/app/manifests/c');
    expect(down.status).toBe(503);
    expect(down.headers.get('retry-after')).toBe('10');
    expect((await errorOf(down)).message).toBe('upstream acr (registry.test) is marked down after repeated failures; next attempt in 10s');
    clock += 2000; // the cached tag is stale now (still within the cool-down): served without asking the upstream
    const stale = await m.request('/v2/team/app/manifests/v1');
    expect(stale.status).toBe(200);
    expect(stale.headers.get('x-cache')).toBe('stale');
    expect(Buffer.from(await stale.arrayBuffer()).equals(img.manifest)).toBe(true);
    expect(fake.calls.length).toBe(calls);
    const metrics = await (await m.request('/metrics')).text();
    expect(metrics).toContain('acr_mirror_upstream_up{upstream="acr"} 0');

    fake.intercept = null;
    clock += 10_000; // cool-down over: the next request is the probe
    const back = await m.request('/v2/team/app/manifests/v1');
    expect(back.status).toBe(200);
    expect(fake.calls.length).toBeGreaterThan(calls);
    expect(await (await m.request('/metrics')).text()).toContain('acr_mirror_upstream_up{upstream="acr"} 1');
  });

  it('404s are answers and do not mark the upstream down', async () => {
    const fake = new FakeUpstream();
    m = await startTestMirror(fake, { upstream: { breaker_threshold: 2, retries: 0 } });
    for (let i = 0; i < 5; i++) expect((await m.request(`/v2/team/none/manifests/t${i}`)).status).toBe(404);
    expect(await (await m.request('/metrics')).text()).toContain('acr_mirror_upstream_up{upstream="acr"} 1');
  });
});

describe('offline = true', () => {
  it('never contacts the upstream: serves what is cached, 503 for the rest', async () => {
    const fake = new FakeUpstream();
    let clock = Date.now();
    const img = fake.add(makeImage('team/app', 'v1', [1000]));
    const online = await startTestMirror(fake, { now: () => clock });
    await (await online.request('/v2/team/app/manifests/v1')).arrayBuffer();
    const [layer, bytes] = [...img.blobs.entries()].find(([, b]) => b.length === 1000)!;
    await (await online.request(`/v2/team/app/blobs/${layer}`)).arrayBuffer();
    await online.mirror.fills.settled();
    await online.mirror.close();

    // a second mirror, offline, on the same cache directory
    const { createMirror } = await import('../../src/app.js');
    const { parseConfig } = await import('../../src/config/load.js');
    const { pino } = await import('pino');
    const config = parseConfig(
      { storage: { dir: 'data' }, cache: { offline: true }, upstreams: { acr: { url: 'https://registry.test' } } },
      { env: {}, baseDir: online.dir, source: 'test' },
    );
    const offline = await createMirror(config, { log: pino({ level: 'silent' }), fetch: fake.fetch, now: () => clock + 3_600_000, clientAddress: () => '127.0.0.1' });
    try {
      const before = fake.calls.length;
      const get = (p: string) => offline.app.request(`http://mirror.test${p}`);
      const manifest = await get('/v2/team/app/manifests/v1');
      expect(manifest.status).toBe(200);
      expect(Buffer.from(await manifest.arrayBuffer()).equals(img.manifest)).toBe(true);
      const blob = await get(`/v2/team/app/blobs/${layer}`);
      expect(Buffer.from(await blob.arrayBuffer()).equals(bytes)).toBe(true);
      const missing = await get('/v2/team/app/manifests/v2');
      expect(missing.status).toBe(503);
      expect((await errorOf(missing)).message).toBe('upstream acr (registry.test) is offline (offline = true): only cached content is served');
      const tags = await get('/v2/team/app/tags/list');
      expect(await tags.json()).toEqual({ name: 'team/app', tags: ['v1'] });
      expect(fake.calls.length).toBe(before);
    } finally {
      await offline.close();
      await online.close();
    }
  });
});
