// Every admin route needs the admin token: without it, with a wrong one, or with a forged session cookie the
// answer is 401 and nothing happens. Without a configured token the admin API is off, and says so.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ADMIN_ENV, ADMIN_TOKEN, bearer, finishedJob, startWarm } from '../support/admin.js';
import { FakeUpstream, makeImage } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';

let fake: FakeUpstream;
let m: TestMirror;
let jobId: string;

beforeEach(async () => {
  fake = new FakeUpstream();
  fake.add(makeImage('team/app', 'v1', [2000]));
  fake.add(makeImage('team/other', 'v2', [3000], 2));
  m = await startTestMirror(fake, { env: ADMIN_ENV });
  jobId = (await finishedJob(m, (await startWarm(m, { images: ['team/app:v1'] })).id)).id;
});
afterEach(async () => {
  await m.close();
});

/** Every admin route, with a request that would change something if it were let through. */
const routes = () => [
  { route: 'POST /admin/warm', path: '/admin/warm', method: 'POST', type: 'application/json', body: JSON.stringify({ images: ['team/other:v2'] }) },
  { route: 'POST /admin/export', path: '/admin/export', method: 'POST', type: 'application/json', body: JSON.stringify({ images: ['team/other:v2'] }) },
  { route: 'POST /admin/import', path: '/admin/import', method: 'POST', type: 'application/x-tar', body: 'not a tar' },
  { route: 'GET /admin/jobs', path: '/admin/jobs', method: 'GET' },
  { route: 'GET /admin/jobs/:id', path: `/admin/jobs/${jobId}`, method: 'GET' },
  { route: 'GET /admin/jobs/:id/events', path: `/admin/jobs/${jobId}/events`, method: 'GET' },
  { route: 'GET /admin/images', path: '/admin/images', method: 'GET' },
  { route: 'DELETE /admin/images/:ref{.+}', path: '/admin/images/team/app:v1', method: 'DELETE' },
  { route: 'GET /admin/stats', path: '/admin/stats', method: 'GET' },
  { route: 'GET /admin/traffic', path: '/admin/traffic', method: 'GET' },
  { route: 'GET /admin/upstreams', path: '/admin/upstreams', method: 'GET' },
  { route: 'GET /admin/ui', path: '/admin/ui', method: 'GET' },
  { route: 'GET /admin/ui/parts', path: '/admin/ui/parts', method: 'GET' },
  { route: 'POST /admin/ui/login', path: '/admin/ui/login', method: 'POST', type: 'application/x-www-form-urlencoded', body: 'token=wrong-token-0123456789abcdef' },
  { route: 'POST /admin/ui/logout', path: '/admin/ui/logout', method: 'POST' },
];

const credentials: Record<string, Record<string, string>> = {
  'no credentials': {},
  'a wrong token': bearer('wrong-token-0123456789abcdef'),
  'the token as a prefix': bearer(ADMIN_TOKEN.slice(0, -1)),
  'the token with a suffix': bearer(`${ADMIN_TOKEN}x`),
  'HTTP Basic': { authorization: `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}` },
  'a forged session cookie': { cookie: `acr_mirror_admin=${ADMIN_TOKEN}` },
};

describe('admin authentication', () => {
  it('the route list below covers every admin route the app serves', () => {
    const served = m.mirror.app.routes.filter((r) => r.path.startsWith('/admin/') && r.method !== 'ALL').map((r) => `${r.method} ${r.path}`);
    expect(new Set(served)).toEqual(new Set(routes().map((r) => r.route)));
  });

  it.each(Object.keys(credentials))('every admin route answers 401 to %s, and nothing happens', async (kind) => {
    // Read back with a session cookie: the bearer token is refused to this address once the throttle kicks in.
    const login = await m.request('/admin/ui/login', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${ADMIN_TOKEN}` });
    const admin = { cookie: login.headers.get('set-cookie')!.split(';')[0]! };
    const before = {
      jobs: await (await m.request('/admin/jobs', { headers: admin })).text(),
      images: await (await m.request('/admin/images', { headers: admin })).text(),
      calls: fake.calls.length,
    };
    // Failed token checks (a wrong Authorization header, the login form's wrong token) are throttled after 5 a minute.
    let failures = 0;
    for (const r of routes()) {
      const res = await m.request(r.path, {
        method: r.method,
        headers: { ...credentials[kind], ...(r.type ? { 'content-type': r.type } : {}) },
        ...(r.body ? { body: r.body } : {}),
      });
      const checksToken = r.route === 'POST /admin/ui/login' || 'authorization' in credentials[kind]!;
      const throttled = checksToken && failures >= 5;
      if (checksToken) failures++;
      expect(res.status, `${r.route} with ${kind}`).toBe(throttled ? 429 : 401);
      expect(res.headers.get('set-cookie'), r.route).toBeNull();
      const text = await res.text();
      expect(text).not.toContain('team/app');
      if (throttled) expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
      else if (r.route === 'GET /admin/ui' || r.route === 'POST /admin/ui/login') expect(text).toContain('name="token"');
      else expect(res.headers.get('www-authenticate')).toBe('Bearer realm="acr-mirror admin"');
    }
    expect(await (await m.request('/admin/jobs', { headers: admin })).text()).toBe(before.jobs);
    expect(await (await m.request('/admin/images', { headers: admin })).text()).toBe(before.images);
    expect(fake.calls.length).toBe(before.calls);
    expect(m.mirror.fills.size).toBe(0);
  });

  it('the login form sets a session cookie (not the token) that opens the page and the API', async () => {
    const login = await m.request('/admin/ui/login', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `token=${encodeURIComponent(ADMIN_TOKEN)}`,
    });
    expect(login.status).toBe(303);
    expect(login.headers.get('location')).toBe('/admin/ui');
    const setCookie = login.headers.get('set-cookie')!;
    expect(setCookie).toMatch(/^acr_mirror_admin=[\w.-]+; Max-Age=43200; Path=\/admin; HttpOnly; SameSite=Strict$/);
    expect(setCookie).not.toContain(ADMIN_TOKEN);
    const cookie = setCookie.split(';')[0]!;
    const page = await m.request('/admin/ui', { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('data-ref="team/app:v1"');
    expect((await m.request('/admin/stats', { headers: { cookie } })).status).toBe(200);
    // a bearer header decides alone, even next to a valid cookie
    expect((await m.request('/admin/stats', { headers: { cookie, ...bearer('wrong-token-0123456789abcdef') } })).status).toBe(401);
    const logout = await m.request('/admin/ui/logout', { method: 'POST', headers: { cookie, origin: 'http://mirror.test' } });
    expect(logout.status).toBe(303);
    expect(logout.headers.get('set-cookie')).toMatch(/^acr_mirror_admin=; Max-Age=0; Path=\/admin/);
  });
});

describe('admin API without a token', () => {
  it('is disabled with a start-up log line, and every admin route answers 404 saying why', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'info' }, new Writable({ write: (chunk, _enc, done) => void (lines.push(String(chunk)), done()) }));
    const off = await startTestMirror(fake, { log });
    try {
      expect(lines.join('')).toContain('admin API disabled: no admin token configured (set ACR_MIRROR_ADMIN_TOKEN, admin.token_env or admin.token_file)');
      for (const r of routes()) {
        const res = await off.request(r.path, { method: r.method, headers: bearer() });
        expect(res.status, r.route).toBe(404);
        expect(((await res.json()) as { errors: { message: string }[] }).errors[0]!.message).toMatch(/^the admin API is disabled/);
      }
      expect((await off.request('/v2/team/app/manifests/v1')).status).toBe(200);
    } finally {
      await off.close();
    }
  });

  it('logs where the token came from when enabled, never the token', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'info' }, new Writable({ write: (chunk, _enc, done) => void (lines.push(String(chunk)), done()) }));
    const on = await startTestMirror(fake, { log, env: ADMIN_ENV });
    try {
      await on.request('/admin/stats', { headers: bearer() });
      const text = lines.join('');
      expect(text).toContain('"tokenFrom":"environment variable ACR_MIRROR_ADMIN_TOKEN","msg":"admin API enabled at /admin/ (web page: /admin/ui)"');
      expect(text).not.toContain(ADMIN_TOKEN);
    } finally {
      await on.close();
    }
  });
});
