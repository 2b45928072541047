// What the operator reads when something is wrong: a warn line per upstream failure (once per cause per upstream
// per minute) with the message the client got, offline refusals and rejected imports, and request lines of error
// answers carrying the OCI code and message.
import { Writable } from 'node:stream';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ADMIN_ENV, bearer } from '../support/admin.js';
import { FakeUpstream, makeImage } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';

type Line = Record<string, unknown> & { level: number; msg: string };

/** A logger whose lines the test reads back, parsed. */
function captured(): { log: pino.Logger; lines: () => Promise<Line[]> } {
  let text = '';
  const log = pino({ level: 'info' }, new Writable({ write: (chunk, _enc, done) => void ((text += String(chunk)), done()) }));
  return {
    log,
    async lines() {
      await nextTurn(); // request lines are written once per turn of the event loop
      await nextTurn();
      return text.trimEnd().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line);
    },
  };
}

const errorOf = async (res: Response) => ((await res.json()) as { errors: { code: string; message: string }[] }).errors[0]!;
const failureFetch = (code: string) => () => {
  throw Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error(code), { code }) });
};

let m: TestMirror | undefined;
afterEach(async () => {
  await m?.close();
  m = undefined;
});

describe('upstream failures are logged at warn with the message the client got', () => {
  it.each<[string, (fake: FakeUpstream) => void, string, number]>([
    ['credentials rejected', (fake) => void (fake.password = 'rotated'), 'UPSTREAM_AUTH_FAILED', 502],
    ['token service down', (fake) => void (fake.intercept = (c) => (c.host === 'auth.test' ? new Response('down', { status: 503 }) : undefined)), 'UPSTREAM_BAD_RESPONSE', 502],
    ['5xx after the retries', (fake) => void (fake.intercept = (c) => (c.host === 'registry.test' ? new Response('oops', { status: 500 }) : undefined)), 'UPSTREAM_BAD_RESPONSE', 502],
    ['TLS certificate', (fake) => void (fake.intercept = failureFetch('CERT_HAS_EXPIRED')), 'UPSTREAM_UNREACHABLE', 503],
    ['timeout', (fake) => void (fake.intercept = failureFetch('UND_ERR_HEADERS_TIMEOUT')), 'UPSTREAM_TIMEOUT', 504],
  ])('%s', async (_cause, breakUpstream, kind, status) => {
    const fake = new FakeUpstream();
    fake.add(makeImage('team/app', 'v1', [10]));
    const { log, lines } = captured();
    m = await startTestMirror(fake, { log, upstream: { retries: 1 } });
    breakUpstream(fake);
    const res = await m.request('/v2/team/app/manifests/v1');
    expect(res.status).toBe(status);
    const answer = await errorOf(res);
    const warned = (await lines()).filter((l) => l.msg === 'upstream request failed');
    expect(warned).toEqual([expect.objectContaining({ level: 40, upstream: 'acr', kind, code: 'UNAVAILABLE', status, error: answer.message })]);
    const request = (await lines()).find((l) => l.msg === 'request');
    expect(request).toMatchObject({ status, code: 'UNAVAILABLE', error: answer.message, upstream: 'acr' });
  });

  it('once per cause per upstream per minute, then saying how many failed since', async () => {
    const fake = new FakeUpstream();
    let clock = Date.parse('2026-01-01T00:00:00Z');
    const { log, lines } = captured();
    m = await startTestMirror(fake, { log, now: () => clock, upstream: { breaker_threshold: 1000 } });
    fake.password = 'rotated';
    const warned = async () => (await lines()).filter((l) => l.msg === 'upstream request failed');
    for (const tag of ['a', 'b', 'c']) expect((await m.request(`/v2/team/app/manifests/${tag}`)).status).toBe(502);
    expect(await warned()).toHaveLength(1);
    fake.password = 'mirror-secret';
    fake.intercept = (c) => (c.host === 'registry.test' ? new Response('oops', { status: 500 }) : undefined);
    expect((await m.request('/v2/team/app/manifests/d')).status).toBe(502);
    expect((await warned()).map((l) => l.kind)).toEqual(['UPSTREAM_AUTH_FAILED', 'UPSTREAM_BAD_RESPONSE']);
    fake.intercept = null;
    fake.password = 'rotated';
    fake.revokeTokens();
    clock += 60_000;
    expect((await m.request('/v2/team/app/manifests/e')).status).toBe(502);
    const all = await warned();
    expect(all).toHaveLength(3);
    expect(all[2]).toMatchObject({ kind: 'UPSTREAM_AUTH_FAILED', repeatedSinceLastLine: 2 });
  });

  it('a repository the upstream does not have is an answer, not a failure: no warn line', async () => {
    const { log, lines } = captured();
    m = await startTestMirror(new FakeUpstream(), { log });
    const res = await m.request('/v2/team/none/manifests/v1');
    expect(res.status).toBe(404);
    const logged = await lines();
    expect(logged.filter((l) => l.level >= 40)).toEqual([]);
    expect(logged.find((l) => l.msg === 'request')).toMatchObject({ status: 404, code: 'MANIFEST_UNKNOWN', error: (await errorOf(res)).message });
  });
});

describe('offline', () => {
  it('a request the cache cannot answer is refused with a warn line; the upstream needs no password', async () => {
    const { log, lines } = captured();
    m = await startTestMirror(new FakeUpstream(), { log, upstream: { password_env: 'NOT_SET_ANYWHERE' }, config: { cache: { offline: true } } });
    const res = await m.request('/v2/team/app/manifests/v1');
    expect(res.status).toBe(503);
    const answer = await errorOf(res);
    expect((await lines()).filter((l) => l.level === 40)).toEqual([
      expect.objectContaining({ msg: 'upstream request refused: offline', upstream: 'acr', kind: 'UPSTREAM_OFFLINE', error: answer.message }),
    ]);
  });

  it('an offline upstream with temporary credentials starts without its AccessKey variables', async () => {
    m = await startTestMirror(new FakeUpstream(), { upstream: { offline: true, temporary_credentials: { edition: 'personal', region: 'cn-hangzhou' } } });
    expect((await m.request('/v2/team/app/manifests/v1')).status).toBe(503);
  });

  it.each([
    ['cache.offline', { cache: { offline: true } }, {}],
    ['upstreams.acr.offline', {}, { offline: true }],
  ])('%s: /readyz reports the upstream as offline, not up', async (_key, config, upstream) => {
    m = await startTestMirror(new FakeUpstream(), { config, upstream });
    const ready = (await (await m.request('/readyz')).json()) as { upstreams: Record<string, { status: string; up: boolean }> };
    expect(ready.upstreams.acr).toMatchObject({ status: 'offline', up: false });
  });

  it('an upstream that is not offline reports up, and down once the breaker marks it down', async () => {
    const fake = new FakeUpstream();
    m = await startTestMirror(fake, { upstream: { breaker_threshold: 1, retries: 0 } });
    const upstreamState = async () => ((await (await m!.request('/readyz')).json()) as { upstreams: Record<string, { status: string; up: boolean }> }).upstreams.acr;
    expect(await upstreamState()).toMatchObject({ status: 'up', up: true });
    fake.intercept = failureFetch('ECONNREFUSED');
    expect((await m.request('/v2/team/app/manifests/v1')).status).toBe(503);
    expect(await upstreamState()).toMatchObject({ status: 'down', up: false });
  });
});

describe('admin', () => {
  it('a rejected bundle import is logged at warn with the reason', async () => {
    const { log, lines } = captured();
    m = await startTestMirror(new FakeUpstream(), { log, env: ADMIN_ENV });
    const res = await m.request('/admin/import?names=team/app', { method: 'POST', headers: bearer(), body: new Uint8Array(Buffer.from('not a tar at all')) });
    expect(res.status).toBe(400);
    const answer = await errorOf(res);
    expect((await lines()).filter((l) => l.level === 40)).toEqual([
      expect.objectContaining({ msg: 'bundle import rejected', code: answer.code, error: answer.message, names: ['team/app'] }),
    ]);
  });

  it('says whether the token was wrong or missing', async () => {
    m = await startTestMirror(new FakeUpstream(), { env: ADMIN_ENV });
    const wrong = await m.request('/admin/jobs', { headers: bearer('x'.repeat(32)) });
    expect([wrong.status, (await errorOf(wrong)).message]).toEqual([401, 'admin token rejected: the bearer token is not the configured admin token']);
    const missing = await m.request('/admin/jobs');
    expect([missing.status, (await errorOf(missing)).message]).toEqual([401, 'admin token required: send Authorization: Bearer <token>']);
  });

  it.each(['/admin/nope', '/admin/jobs/1/nope', '/admin'])('%s answers a JSON error', async (path) => {
    m = await startTestMirror(new FakeUpstream(), { env: ADMIN_ENV });
    const res = await m.request(path, { headers: bearer() });
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await errorOf(res)).toEqual({ code: 'NOT_FOUND', message: `no such admin endpoint: GET ${path} (see /admin/ui)` });
  });

  it('admin requests have their own route label in the metrics', async () => {
    m = await startTestMirror(new FakeUpstream(), { env: ADMIN_ENV });
    await m.request('/admin/jobs', { headers: bearer() });
    await m.request('/admin/nope', { headers: bearer() });
    const text = await (await m.request('/metrics')).text();
    expect(text).toContain('acr_mirror_http_requests_total{route="admin",method="GET",status="200"} 1');
    expect(text).toContain('acr_mirror_http_requests_total{route="admin",method="GET",status="404"} 1');
  });
});

describe('request lines of routed names', () => {
  it('show the upstream repository name when a route rewrites it', async () => {
    const fake = new FakeUpstream();
    fake.add(makeImage('company/vendor/tool', 'v1', [10]));
    const { log, lines } = captured();
    m = await startTestMirror(fake, { log, config: { routes: [{ prefix: 'vendor', upstream: 'acr', rewrite: 'company/vendor' }] } });
    expect((await m.request('/v2/vendor/tool/manifests/v1')).status).toBe(200);
    expect((await lines()).find((l) => l.msg === 'request')).toMatchObject({ repo: 'vendor/tool', upstream: 'acr', upstreamRepo: 'company/vendor/tool', status: 200 });
  });
});
