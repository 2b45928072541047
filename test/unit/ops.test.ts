import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeUpstream, makeImage } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';

let fake: FakeUpstream;
let m: TestMirror;
beforeEach(async () => {
  fake = new FakeUpstream();
  // Without prefetch, each first blob GET is a miss the test can count (prefetch.test.ts counts prefetches).
  m = await startTestMirror(fake, { config: { cache: { prefetch: false } } });
});
afterEach(async () => {
  await m.close();
});

/** The value of one sample line of the Prometheus text, or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

describe('/metrics', () => {
  it('counts cache outcomes, bytes served and pulled, tokens and fills', async () => {
    const img = fake.add(makeImage('team/app', 'v1', [100_000, 50_000]));
    await (await m.request('/v2/team/app/manifests/v1')).arrayBuffer();
    for (const d of img.blobs.keys()) await (await m.request(`/v2/team/app/blobs/${d}`)).arrayBuffer();
    await m.mirror.fills.settled();
    for (const d of img.blobs.keys()) await (await m.request(`/v2/team/app/blobs/${d}`)).arrayBuffer();
    await (await m.request('/v2/team/app/manifests/v1')).arrayBuffer();

    const res = await m.request('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    const blobBytes = [...img.blobs.values()].reduce((n, b) => n + b.length, 0);
    expect(sample(text, 'acr_mirror_cache_requests_total', { kind: 'blob', outcome: 'miss' })).toBe(img.blobs.size);
    expect(sample(text, 'acr_mirror_cache_requests_total', { kind: 'blob', outcome: 'hit' })).toBe(img.blobs.size);
    expect(sample(text, 'acr_mirror_cache_requests_total', { kind: 'manifest', outcome: 'hit' })).toBe(1);
    expect(sample(text, 'acr_mirror_served_bytes_total', { kind: 'blob' })).toBe(2 * blobBytes);
    expect(sample(text, 'acr_mirror_served_bytes_total', { kind: 'manifest' })).toBe(2 * img.manifest.length);
    expect(sample(text, 'acr_mirror_upstream_bytes_total', { upstream: 'acr', kind: 'blob' })).toBe(blobBytes);
    expect(sample(text, 'acr_mirror_upstream_bytes_total', { upstream: 'acr', kind: 'manifest' })).toBe(img.manifest.length);
    expect(sample(text, 'acr_mirror_token_requests_total', { upstream: 'acr', result: 'ok' })).toBe(1);
    expect(sample(text, 'acr_mirror_fills_total', { result: 'committed' })).toBe(img.blobs.size);
    expect(sample(text, 'acr_mirror_cache_blobs')).toBe(img.blobs.size);
    expect(sample(text, 'acr_mirror_cache_size_bytes')).toBe(blobBytes);
    expect(sample(text, 'acr_mirror_fills_in_flight')).toBe(0);
    expect(sample(text, 'acr_mirror_http_requests_total', { route: 'blob', method: 'GET', status: '200' })).toBe(2 * img.blobs.size);
    expect(sample(text, 'acr_mirror_http_request_duration_seconds_count', { route: 'manifest' })).toBe(2);
    expect(text).not.toContain('mirror-secret');
    expect(text).not.toContain('tok-');
  });

  it('counts upstream errors by kind and token failures', async () => {
    fake.password = 'rotated';
    fake.add(makeImage('team/app', 'v1', [10]));
    expect((await m.request('/v2/team/app/manifests/v1')).status).toBe(502);
    const text = await (await m.request('/metrics')).text();
    expect(sample(text, 'acr_mirror_token_requests_total', { upstream: 'acr', result: 'error' })).toBe(1);
    expect(sample(text, 'acr_mirror_upstream_errors_total', { upstream: 'acr', kind: 'upstream_auth_failed' })).toBe(1);
  });
});

describe('/healthz and /readyz', () => {
  it('reports alive and ready with the upstream state', async () => {
    const health = await m.request('/healthz');
    expect([health.status, await health.json()]).toEqual([200, { status: 'ok' }]);
    fake.add(makeImage('team/app', 'v1', [10]));
    await m.request('/v2/team/app/manifests/v1');
    const ready = await m.request('/readyz');
    expect(ready.status).toBe(200);
    const body = (await ready.json()) as { status: string; checks: Record<string, string>; upstreams: Record<string, { lastSuccess: string | null }> };
    expect(body.status).toBe('ready');
    expect(body.checks).toEqual({ database: 'ok', cacheDir: 'ok' });
    expect(body.upstreams.acr!.lastSuccess).toMatch(/^\d{4}-/);
  });

  it('reports an upstream\'s last error by kind and time, without the message that names the repository', async () => {
    fake.password = 'rotated';
    fake.add(makeImage('team/secret-project', 'v1', [10]));
    expect((await m.request('/v2/team/secret-project/manifests/v1')).status).toBe(502);
    const body = (await (await m.request('/readyz')).json()) as { upstreams: Record<string, { lastError: unknown }> };
    expect(body.upstreams.acr!.lastError).toEqual({ kind: 'upstream_auth_failed', at: expect.stringMatching(/^\d{4}-/) });
    expect(JSON.stringify(body)).not.toContain('secret-project');
  });

  it('is not ready when the cache directory cannot be written', async () => {
    const tmp = join(m.dir, 'data', 'tmp');
    await rm(tmp, { recursive: true });
    await writeFile(tmp, 'not a directory');
    const ready = await m.request('/readyz');
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { checks: { cacheDir: string } }).checks.cacheDir).toBe('error: ENOTDIR');
  });
});
