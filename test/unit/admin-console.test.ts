// The admin page as a health console, through its API: upstream state (up, down, offline; last success and error;
// breaker), traffic of the last hour per minute, free disk space beside an unbounded cache, and the parts the page
// refreshes (escaped, with times that say their zone, failed jobs marked as failed).
import { statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { CacheStats } from '../../src/admin/inventory.js';
import type { TrafficMinute } from '../../src/observability/traffic-history.js';
import type { UpstreamHealth } from '../../src/upstream/health.js';
import { ADMIN_ENV, bearer, finishedJob, startWarm } from '../support/admin.js';
import { connectionRefused, FakeUpstream, makeImage, sha256 } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';

const CLOCK = Date.UTC(2026, 11, 7, 10, 15, 30);
let m: TestMirror | undefined;
afterEach(async () => {
  await m?.close();
  m = undefined;
});

async function start(opts: Parameters<typeof startTestMirror>[1] = {}) {
  const fake = new FakeUpstream();
  const image = fake.add(makeImage('team/app', 'v1', [3000, 500], 7));
  let clock = CLOCK;
  m = await startTestMirror(fake, { env: ADMIN_ENV, now: () => clock, ...opts });
  return { fake, image, mirror: m, advance: (ms: number) => (clock += ms) };
}

const get = async <T,>(mirror: TestMirror, path: string): Promise<T> => {
  const res = await mirror.request(path, { headers: bearer() });
  expect(res.status, path).toBe(200);
  return (await res.json()) as T;
};
const upstreams = async (mirror: TestMirror) => (await get<{ upstreams: UpstreamHealth[] }>(mirror, '/admin/upstreams')).upstreams;
const parts = async (mirror: TestMirror) => (await mirror.request('/admin/ui/parts', { headers: bearer() })).text();
const errorOf = async (res: Response) => ((await res.json()) as { errors: { message: string }[] }).errors[0]!.message;

describe('GET /admin/upstreams', () => {
  it('reports an upstream up with its last success, then down with the error its client got and the open breaker', async () => {
    const { fake, mirror, advance } = await start({ upstream: { breaker_threshold: 2, breaker_cooldown: '30s', retries: 0 } });
    expect(await upstreams(mirror)).toEqual([
      { name: 'acr', host: 'registry.test', state: 'up', lastSuccess: null, lastError: null, breaker: { state: 'closed', failures: 0, retryAt: null } },
    ]);
    expect((await mirror.request('/v2/team/app/manifests/v1')).status).toBe(200);
    expect((await upstreams(mirror))[0]!.lastSuccess).toBe(new Date(CLOCK).toISOString());

    fake.intercept = connectionRefused;
    advance(5000);
    const messages: string[] = [];
    for (const tag of ['a', 'b']) messages.push(await errorOf(await mirror.request(`/v2/team/app/manifests/${tag}`)));
    const [acr] = await upstreams(mirror);
    expect(acr).toEqual({
      name: 'acr',
      host: 'registry.test',
      state: 'down',
      lastSuccess: new Date(CLOCK).toISOString(),
      lastError: { kind: 'upstream_unreachable', message: messages[1], at: new Date(CLOCK + 5000).toISOString() },
      breaker: { state: 'open', failures: 2, retryAt: new Date(CLOCK + 35_000).toISOString() },
    });
    expect(messages[1]).toContain('connection refused');
    expect(JSON.stringify(acr)).not.toContain(fake.password);
  });

  it('reports an upstream that cache.offline keeps from being asked as offline', async () => {
    const { mirror } = await start({ config: { cache: { offline: true } } });
    expect((await mirror.request('/v2/team/app/manifests/v1')).status).toBe(503);
    expect(await upstreams(mirror)).toEqual([expect.objectContaining({ name: 'acr', state: 'offline', breaker: { state: 'closed', failures: 0, retryAt: null } })]);
  });
});

describe('GET /admin/traffic', () => {
  it('reports the current minute: bytes served and pulled upstream, lookups and hits', async () => {
    const { image, mirror } = await start({ config: { cache: { prefetch: false } } });
    const layer = (JSON.parse(image.manifest.toString()) as { layers: { digest: string }[] }).layers[0]!.digest;
    for (let i = 0; i < 2; i++) {
      await (await mirror.request(`/v2/team/app/blobs/${layer}`)).arrayBuffer();
      await mirror.mirror.fills.settled(); // the second GET is a hit, not a join
    }
    const { minutes } = await get<{ minutes: TrafficMinute[] }>(mirror, '/admin/traffic');
    const size = image.blobs.get(layer)!.length;
    expect(minutes).toEqual([{ at: '2026-12-07T10:15:00.000Z', served: 2 * size, upstream: size, lookups: 2, hits: 1, hitRatio: 0.5 }]);
  });
});

describe('free disk space', () => {
  it('is reported for the cache directory, and shown beside the cache size when there is no storage.max_size', async () => {
    const { mirror } = await start();
    const stats = await get<CacheStats>(mirror, '/admin/stats');
    const fs = await statfs(join(mirror.dir, 'data'));
    expect(stats.cache.limit).toBeNull();
    expect(stats.cache.free).toBeGreaterThan(0);
    expect(stats.cache.free).toBeLessThanOrEqual(fs.blocks * fs.bsize);
    expect(await parts(mirror)).toMatch(/of no limit<span id="disk-free"> · [\d.]+ [KMGT]?i?B free on disk<\/span>/);
  });

  it('is not shown when storage.max_size bounds the cache (the meter shows its use instead)', async () => {
    const { mirror } = await start({ config: { storage: { dir: 'data', max_size: '1GiB' } } });
    const html = await parts(mirror);
    expect(html).toContain('<meter id="disk-usage"');
    expect(html).not.toContain('disk-free');
  });
});

describe('the page parts', () => {
  it('show the update time and every time with its zone, an upstream card per upstream, the chart and delete buttons', async () => {
    const { mirror } = await start();
    expect((await mirror.request('/v2/team/app/manifests/v1')).status).toBe(200);
    const html = await parts(mirror);
    expect(html).toContain('<span id="updated-at">updated <time datetime="2026-12-07T10:15:30.000Z" data-seconds="true">2026-12-07 10:15:30 UTC</time></span>');
    expect(html).toMatch(/<div class="card" data-upstream="acr" data-state="up"><h2>acr <span class="badge" data-state="up">up<\/span><\/h2>/);
    expect(html).toContain('<dd><time datetime="2026-12-07T10:15:30.000Z">2026-12-07 10:15 UTC</time></dd>');
    expect(html).toMatch(/<section id="traffic" class="chart">.*<svg viewBox="0 0 600 120"[^>]*>.*<g data-minute="2026-12-07T10:15:00.000Z">/s);
    expect(html).toContain('<tr data-ref="team/app:v1" data-upstream="acr">');
    expect(html).toContain('<button type="button" class="delete"');
    for (const time of html.match(/<time [^>]*>[^<]*<\/time>/g)!) expect(time).toMatch(/ UTC<\/time>$/);
  });

  it('show the last error in red until an exchange succeeds after it', async () => {
    const { fake, mirror, advance } = await start({ upstream: { retries: 0 } });
    fake.intercept = connectionRefused;
    const message = await errorOf(await mirror.request('/v2/team/app/manifests/v1'));
    const card = async () => /<div class="card" data-upstream="acr".*?<\/dl><\/div>/s.exec(await parts(mirror))![0];
    expect(await card()).toContain(`<span class="error">${message}</span></dd>`);
    fake.intercept = null;
    advance(1000);
    expect((await mirror.request('/v2/team/app/manifests/v1')).status).toBe(200);
    expect(await card()).toContain(`<span class="muted">${message}</span><span class="muted"> (succeeded since)</span></dd>`);
  });

  it('mark a failed job and its bar as failed', async () => {
    const { mirror } = await start();
    const job = await finishedJob(mirror, (await startWarm(mirror, { images: ['team/app:v1', 'team/absent:1'] })).id);
    expect(job.state).toBe('failed');
    const row = new RegExp(`<tr data-id="${job.id}" data-state="failed">.*?</tr>`, 's').exec(await parts(mirror))![0];
    expect(row).toContain('<td data-state="failed">failed</td>');
    expect(row).toContain('1 failed');
    expect(row).toMatch(/<progress max="\d+" value="\d+" data-state="failed"><\/progress>/);
  });

  it('escape what the upstream said in its last error', async () => {
    const { fake, mirror } = await start({ upstream: { retries: 0 } });
    const body = Buffer.from('{}');
    fake.intercept = (call) =>
      call.host === 'registry.test' && call.path.includes('/manifests/') && call.authorization
        ? new Response(new Uint8Array(body), { headers: { 'content-type': 'text/html<img src=x onerror=alert(1)>', 'docker-content-digest': sha256(body) } })
        : undefined;
    expect((await mirror.request('/v2/team/app/manifests/v1')).status).toBe(502);
    expect((await upstreams(mirror))[0]!.lastError!.message).toContain('<img src=x onerror=alert(1)>');
    const html = await parts(mirror);
    expect(html).toContain('text/html&lt;img src=x onerror=alert(1)&gt;');
    expect(html).not.toContain('<img');
  });
});
