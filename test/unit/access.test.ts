import bcrypt from 'bcryptjs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ClientAccess, parseHtpasswd } from '../../src/access/client-access.js';
import { FakeUpstream, makeImage } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';

const hash = (pw: string) => bcrypt.hashSync(pw, 4);

describe('ClientAccess', () => {
  it.each([
    ['10.1.2.3', true],
    ['10.255.255.255', true],
    ['11.0.0.1', false],
    ['192.168.7.9', true],
    ['192.168.8.1', false],
    ['::ffff:10.0.0.1', true],
    ['::ffff:11.0.0.1', false],
    ['fd00::1', true],
    ['fe80::1', false],
    ['127.0.0.1', false],
    [undefined, false],
  ])('allow-list admits %s: %s', (address, expected) => {
    const a = new ClientAccess(['10.0.0.0/8', '192.168.7.0/24', 'fd00::/8'], null);
    expect(a.allows(address)).toBe(expected);
  });

  it('checks Basic credentials against bcrypt hashes', async () => {
    const a = new ClientAccess(['0.0.0.0/0'], [{ name: 'node', hash: hash('pw:with:colons') }]);
    const basic = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;
    expect(await a.authenticate(basic('node:pw:with:colons'))).toBe('node');
    expect(await a.authenticate(basic('node:pw:with:colons'))).toBe('node');
    expect(await a.authenticate(basic('node:wrong'))).toBeNull();
    expect(await a.authenticate(basic('other:pw:with:colons'))).toBeNull();
    expect(await a.authenticate('Bearer x')).toBeNull();
    expect(await a.authenticate(undefined)).toBeNull();
  });

  it('runs bcrypt for an unknown user too, against a dummy hash of the same cost, so timing does not tell who exists', async () => {
    const userHash = bcrypt.hashSync('pw', 5);
    const a = new ClientAccess(['0.0.0.0/0'], [{ name: 'node', hash: userHash }]);
    const compare = vi.spyOn(bcrypt, 'compare');
    try {
      expect(await a.authenticate(`Basic ${Buffer.from('nobody:pw').toString('base64')}`, '10.0.0.1')).toBeNull();
      expect(compare).toHaveBeenCalledTimes(1);
      const dummy = compare.mock.calls[0]![1] as string;
      expect(dummy).not.toBe(userHash);
      expect(dummy.slice(0, 7)).toBe(userHash.slice(0, 7));
    } finally {
      compare.mockRestore();
    }
  });

  it('refuses an address for a minute after 5 failed logins, other addresses still log in', async () => {
    let clock = 0;
    const a = new ClientAccess(['0.0.0.0/0'], [{ name: 'node', hash: hash('pw') }], () => clock);
    const basic = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;
    for (let i = 0; i < 5; i++) {
      expect(a.loginRetryAfter('10.0.0.1')).toBe(0);
      expect(await a.authenticate(basic(i % 2 ? 'node:wrong' : 'nobody:pw'), '10.0.0.1')).toBeNull();
    }
    expect(a.loginRetryAfter('10.0.0.1')).toBe(60);
    expect(a.loginRetryAfter('10.0.0.2')).toBe(0);
    expect(await a.authenticate(basic('node:pw'), '10.0.0.2')).toBe('node');
    clock += 60_000;
    expect(a.loginRetryAfter('10.0.0.1')).toBe(0);
  });

  it('parses htpasswd bcrypt entries and names a bad line', () => {
    const h = hash('x');
    expect(parseHtpasswd(`# users\nalice:${h}\n\nbob:${h}\n`)).toEqual([
      { name: 'alice', hash: h },
      { name: 'bob', hash: h },
    ]);
    expect(() => parseHtpasswd(`alice:${h}\nbob:{SHA}abc=\n`)).toThrow(/line 2: expected user:bcrypt-hash/);
    expect(() => parseHtpasswd('nocolon\n')).toThrow(/line 1/);
  });
});

describe('access control on the registry API', () => {
  let m: TestMirror | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await m?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('denies a client outside access.allow with 403 DENIED and no upstream request', async () => {
    const fake = new FakeUpstream();
    fake.add(makeImage('team/app', 'v1', [10]));
    m = await startTestMirror(fake, { config: { access: { allow: ['10.0.0.0/8'] } }, clientAddress: '192.168.1.5' });
    const res = await m.request('/v2/team/app/manifests/v1');
    expect(res.status).toBe(403);
    expect(((await res.json()) as { errors: { code: string; message: string }[] }).errors[0]).toEqual({
      code: 'DENIED',
      message: 'client address 192.168.1.5 is not allowed to use this mirror (access.allow)',
    });
    expect((await m.request('/v2/')).status).toBe(403);
    expect(fake.calls).toHaveLength(0);
  });

  it('asks for Basic credentials when htpasswd is set, and refuses a wrong password without upstream traffic', async () => {
    dir = await mkdtemp(join(tmpdir(), 'acr-htpasswd-'));
    await writeFile(join(dir, 'htpasswd'), `node:${hash('node-pass')}\n`);
    const fake = new FakeUpstream();
    const img = fake.add(makeImage('team/app', 'v1', [10]));
    m = await startTestMirror(fake, { config: { access: { allow: ['127.0.0.0/8'], htpasswd: join(dir, 'htpasswd') } } });
    const ping = await m.request('/v2/');
    expect(ping.status).toBe(401);
    expect(ping.headers.get('www-authenticate')).toBe('Basic realm="acr-mirror"');
    const wrong = await m.request('/v2/team/app/manifests/v1', { headers: { authorization: `Basic ${Buffer.from('node:nope').toString('base64')}` } });
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('UNAUTHORIZED');
    expect(fake.calls).toHaveLength(0);
    const ok = await m.request('/v2/team/app/manifests/v1', { headers: { authorization: `Basic ${Buffer.from('node:node-pass').toString('base64')}` } });
    expect(ok.status).toBe(200);
    expect(Buffer.from(await ok.arrayBuffer()).equals(img.manifest)).toBe(true);
  });

  it('answers 429 TOOMANYREQUESTS with Retry-After after 5 wrong passwords from an address, even to the right one', async () => {
    dir = await mkdtemp(join(tmpdir(), 'acr-htpasswd-'));
    await writeFile(join(dir, 'htpasswd'), `node:${hash('node-pass')}\n`);
    const fake = new FakeUpstream();
    fake.add(makeImage('team/app', 'v1', [10]));
    m = await startTestMirror(fake, { config: { access: { allow: ['127.0.0.0/8'], htpasswd: join(dir, 'htpasswd') } } });
    const as = (credentials: string) => ({ headers: { authorization: `Basic ${Buffer.from(credentials).toString('base64')}` } });
    for (let i = 0; i < 5; i++) expect((await m.request('/v2/team/app/manifests/v1', as('node:nope'))).status).toBe(401);
    const refused = await m.request('/v2/team/app/manifests/v1', as('node:node-pass'));
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
    expect(((await refused.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('TOOMANYREQUESTS');
  });

  it('a name that matches no route is NAME_UNKNOWN and contacts no upstream', async () => {
    const fake = new FakeUpstream();
    m = await startTestMirror(fake, { config: { routes: [{ prefix: 'team', upstream: 'acr' }] } });
    const res = await m.request('/v2/other/app/manifests/v1');
    expect(res.status).toBe(404);
    const body = (await res.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]!.code).toBe('NAME_UNKNOWN');
    expect(body.errors[0]!.message).toContain('no route matches repository other/app');
    const ns = await m.request('/v2/team/app/manifests/v1?ns=quay.io');
    expect(ns.status).toBe(404);
    expect(fake.calls).toHaveLength(0);
  });
});
