// The admin surface against a hostile network: bounded bodies, throttled logins, an address allow-list, a session
// cookie that expires and can be revoked, and no state change a cross-site page can trigger with that cookie.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ADMIN_ENV, ADMIN_TOKEN, bearer, finishedJob } from '../support/admin.js';
import { FakeUpstream, makeImage } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';

let m: TestMirror | undefined;
afterEach(async () => {
  await m?.close();
  m = undefined;
});

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const errorOf = async (res: Response) => ((await res.json()) as { errors: { code: string; message: string }[] }).errors[0]!;

async function start(opts: { clientAddress?: string; config?: Record<string, unknown>; now?: () => number } = {}) {
  const fake = new FakeUpstream();
  fake.add(makeImage('team/app', 'v1', [2000]));
  m = await startTestMirror(fake, { env: ADMIN_ENV, ...opts });
  return { mirror: m, fake };
}

async function login(mirror: TestMirror): Promise<string> {
  const res = await mirror.request('/admin/ui/login', { method: 'POST', headers: FORM, body: `token=${encodeURIComponent(ADMIN_TOKEN)}` });
  expect(res.status).toBe(303);
  return res.headers.get('set-cookie')!.split(';')[0]!;
}

/** A body that arrives in pieces with no Content-Length, as a chunked upload does. */
function chunked(bytes: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= bytes) return controller.close();
      const piece = new TextEncoder().encode('token='.padEnd(Math.min(1024, bytes - sent), 'a'));
      sent += piece.length;
      controller.enqueue(piece);
    },
  });
}

describe('admin request bodies', () => {
  it('a login body beyond a few KiB is refused with 413 INVALID_REQUEST, with or without Content-Length', async () => {
    const { mirror } = await start();
    const big = await mirror.request('/admin/ui/login', { method: 'POST', headers: FORM, body: `token=${'a'.repeat(64 * 1024)}` });
    expect(big.status).toBe(413);
    expect((await errorOf(big)).code).toBe('INVALID_REQUEST');
    const streamed = await mirror.request('/admin/ui/login', { method: 'POST', headers: FORM, body: chunked(1024 * 1024), duplex: 'half' } as RequestInit);
    expect(streamed.status).toBe(413);
  });

  it('a JSON body beyond the limit is refused with 413; the bundle import upload is not limited that way', async () => {
    const { mirror } = await start();
    const images = Array.from({ length: 1000 }, (_, i) => `team/app-${i}:${'v'.repeat(400)}`);
    const warm = await mirror.request('/admin/warm', { method: 'POST', headers: { ...bearer(), 'content-type': 'application/json' }, body: JSON.stringify({ images }) });
    expect(warm.status).toBe(413);
    const imported = await mirror.request('/admin/import?names=team/app', { method: 'POST', headers: { ...bearer(), 'content-type': 'application/x-tar' }, body: new Uint8Array(1024 * 1024) });
    expect(imported.status).not.toBe(413);
  });
});

describe('admin login throttling', () => {
  it('after 5 failed logins a minute, the address gets 429 TOOMANYREQUESTS with Retry-After, even with the right token, until the minute passes', async () => {
    let clock = 1_000_000;
    const { mirror } = await start({ now: () => clock });
    for (let i = 0; i < 5; i++) {
      const res = await mirror.request('/admin/ui/login', { method: 'POST', headers: FORM, body: 'token=wrong-token-0123456789abcdef' });
      expect(res.status).toBe(401);
    }
    const refused = await mirror.request('/admin/ui/login', { method: 'POST', headers: FORM, body: `token=${encodeURIComponent(ADMIN_TOKEN)}` });
    expect(refused.status).toBe(429);
    expect((await errorOf(refused)).code).toBe('TOOMANYREQUESTS');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(Number(refused.headers.get('retry-after'))).toBeLessThanOrEqual(60);
    clock += 61_000;
    expect((await mirror.request('/admin/ui/login', { method: 'POST', headers: FORM, body: `token=${encodeURIComponent(ADMIN_TOKEN)}` })).status).toBe(303);
  });

  it('wrong bearer tokens count as failed logins too', async () => {
    const { mirror } = await start();
    for (let i = 0; i < 5; i++) expect((await mirror.request('/admin/stats', { headers: bearer('wrong-token-0123456789abcdef') })).status).toBe(401);
    const refused = await mirror.request('/admin/stats', { headers: bearer() });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
  });
});

describe('admin.allow', () => {
  it('defaults to loopback plus the access.allow networks', async () => {
    const { mirror } = await start({ clientAddress: '10.1.2.3', config: { access: { allow: ['10.0.0.0/8'] } } });
    expect((await mirror.request('/admin/stats', { headers: bearer() })).status).toBe(200);
  });

  it('refuses an address outside it with 403 DENIED before reading a login body, even from an access.allow network', async () => {
    const { mirror } = await start({ clientAddress: '10.1.2.3', config: { access: { allow: ['10.0.0.0/8'] }, admin: { allow: ['127.0.0.0/8'] } } });
    const stats = await mirror.request('/admin/stats', { headers: bearer() });
    expect(stats.status).toBe(403);
    expect(await errorOf(stats)).toEqual({ code: 'DENIED', message: 'client address 10.1.2.3 may not use the admin API (admin.allow)' });
    expect((await mirror.request('/admin/ui/login', { method: 'POST', headers: FORM, body: `token=${encodeURIComponent(ADMIN_TOKEN)}` })).status).toBe(403);
    expect((await mirror.request('/v2/team/app/manifests/v1')).status).toBe(200);
  });
});

describe('admin session cookie', () => {
  it('carries Max-Age and HttpOnly; SameSite=Strict; Secure over https', async () => {
    const { mirror } = await start();
    const res = await mirror.mirror.app.request('https://mirror.test/admin/ui/login', { method: 'POST', headers: FORM, body: `token=${encodeURIComponent(ADMIN_TOKEN)}` });
    expect(res.headers.get('set-cookie')).toMatch(/^acr_mirror_admin=[\w.-]+; Max-Age=43200; Path=\/admin; HttpOnly; Secure; SameSite=Strict$/);
  });

  it('is not handed out over plain HTTP to another host when an HTTPS listener exists', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'acr-admin-tls-'));
    try {
      await writeFile(join(dir, 'tls.crt'), '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');
      await writeFile(join(dir, 'tls.key'), '-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n');
      const server = { tls_listen: '127.0.0.1:0', tls_cert: join(dir, 'tls.crt'), tls_key: join(dir, 'tls.key') };
      const { mirror } = await start({ clientAddress: '10.1.2.3', config: { server, access: { allow: ['10.0.0.0/8'] } } });
      const body = `token=${encodeURIComponent(ADMIN_TOKEN)}`;
      const plain = await mirror.request('/admin/ui/login', { method: 'POST', headers: FORM, body });
      expect(plain.status).toBe(403);
      expect(plain.headers.get('set-cookie')).toBeNull();
      expect((await errorOf(plain)).message).toContain('log in over HTTPS');
      const secure = await mirror.mirror.app.request('https://mirror.test/admin/ui/login', { method: 'POST', headers: FORM, body });
      expect(secure.status).toBe(303);
      expect(secure.headers.get('set-cookie')).toContain('; Secure');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('stops working after 12 hours', async () => {
    let clock = 1_000_000;
    const { mirror } = await start({ now: () => clock });
    const cookie = await login(mirror);
    expect((await mirror.request('/admin/stats', { headers: { cookie } })).status).toBe(200);
    clock += 12 * 3600_000 + 1000;
    expect((await mirror.request('/admin/stats', { headers: { cookie } })).status).toBe(401);
  });

  it('stops working after logout, while a new login works', async () => {
    const { mirror } = await start();
    const cookie = await login(mirror);
    const logout = await mirror.request('/admin/ui/logout', { method: 'POST', headers: { cookie, origin: 'http://mirror.test' } });
    expect(logout.status).toBe(303);
    expect((await mirror.request('/admin/stats', { headers: { cookie } })).status).toBe(401);
    const fresh = await login(mirror);
    expect((await mirror.request('/admin/stats', { headers: { cookie: fresh } })).status).toBe(200);
  });

  it('is refused when its issue time is altered', async () => {
    const { mirror } = await start();
    const cookie = await login(mirror);
    const [name, value] = cookie.split('=') as [string, string];
    const parts = value.split('.');
    const altered = parts.map((p, i) => (i === 0 ? String(Number(p) + 3600_000) : p)).join('.');
    expect(altered).not.toBe(value);
    expect((await mirror.request('/admin/stats', { headers: { cookie: `${name}=${altered}` } })).status).toBe(401);
  });
});

describe('admin CSRF: what the session cookie authorizes', () => {
  const SAME = { origin: 'http://mirror.test', 'x-requested-with': 'acr-mirror' };
  const warm = (mirror: TestMirror, headers: Record<string, string>) =>
    mirror.request('/admin/warm', { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ images: ['team/app:v1'] }) });

  it('warm with the cookie needs the page header and a same-origin Origin or Sec-Fetch-Site', async () => {
    const { mirror, fake } = await start();
    const cookie = await login(mirror);
    const attempts: Record<string, string>[] = [
      { cookie },
      { cookie, origin: 'http://mirror.test' },
      { cookie, 'x-requested-with': 'acr-mirror' },
      { cookie, 'x-requested-with': 'acr-mirror', origin: 'http://evil.test' },
      { cookie, 'x-requested-with': 'acr-mirror', 'sec-fetch-site': 'same-site' },
      { cookie, 'x-requested-with': 'other', origin: 'http://mirror.test' },
    ];
    for (const headers of attempts) {
      const res = await warm(mirror, headers);
      expect(res.status, JSON.stringify(headers)).toBe(403);
      expect((await errorOf(res)).code).toBe('DENIED');
    }
    expect(fake.calls).toHaveLength(0);
    const byOrigin = await warm(mirror, { cookie, ...SAME });
    expect(byOrigin.status).toBe(202);
    const bySite = await warm(mirror, { cookie, 'x-requested-with': 'acr-mirror', 'sec-fetch-site': 'same-origin' });
    expect(bySite.status).toBe(202);
    for (const res of [byOrigin, bySite]) await finishedJob(mirror, ((await res.json()) as { id: string }).id);
  });

  it('delete with the cookie needs the same; logout needs a same-origin request', async () => {
    const { mirror } = await start();
    const cookie = await login(mirror);
    expect((await mirror.request('/v2/team/app/manifests/v1')).status).toBe(200);
    expect((await mirror.request('/admin/images/team/app:v1', { method: 'DELETE', headers: { cookie } })).status).toBe(403);
    expect((await mirror.request('/admin/images/team/app:v1', { method: 'DELETE', headers: { cookie, ...SAME } })).status).toBe(200);
    expect((await mirror.request('/admin/ui/logout', { method: 'POST', headers: { cookie, origin: 'http://evil.test' } })).status).toBe(403);
    expect((await mirror.request('/admin/stats', { headers: { cookie } })).status).toBe(200);
  });

  it('import and export need the bearer token: the cookie never authorizes them', async () => {
    const { mirror } = await start();
    const cookie = await login(mirror);
    const imported = await mirror.request('/admin/import', { method: 'POST', headers: { cookie, ...SAME, 'content-type': 'application/x-tar' }, body: 'not a tar' });
    expect(imported.status).toBe(401);
    const exported = await mirror.request('/admin/export', { method: 'POST', headers: { cookie, ...SAME, 'content-type': 'application/json' }, body: JSON.stringify({ images: ['team/app:v1'] }) });
    expect(exported.status).toBe(401);
  });

  it('the page GETs and the event stream work with the cookie alone', async () => {
    const { mirror } = await start();
    const cookie = await login(mirror);
    const job = (await (await warm(mirror, { cookie, ...SAME })).json()) as { id: string };
    for (const path of ['/admin/ui', '/admin/ui/parts', '/admin/jobs', `/admin/jobs/${job.id}`, '/admin/upstreams', '/admin/traffic']) {
      expect((await mirror.request(path, { headers: { cookie } })).status, path).toBe(200);
    }
    const events = await mirror.request(`/admin/jobs/${job.id}/events`, { headers: { cookie } });
    expect(events.status).toBe(200);
    await events.body?.cancel();
    await finishedJob(mirror, job.id);
  });
});
