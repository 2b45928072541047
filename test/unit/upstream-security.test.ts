import { afterEach, describe, expect, it } from 'vitest';
import { RealmPolicy } from '../../src/upstream/realms.js';
import { DEFAULT_TOKEN_REALMS } from '../../src/config/schema.js';
import { FakeUpstream, makeImage } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';

let m: TestMirror | undefined;
afterEach(async () => {
  await m?.close();
  m = undefined;
});

const errorOf = async (res: Response) => ((await res.json()) as { errors: { code: string; message: string }[] }).errors[0]!;


/** The registry names `realm` in its challenge instead of the fake's own token service. */
function challengeWith(fake: FakeUpstream, realm: string): void {
  fake.intercept = (call) =>
    call.host === 'registry.test' && !call.authorization
      ? new Response(null, { status: 401, headers: { 'www-authenticate': `Bearer realm="${realm}",service="registry.test"` } })
      : undefined;
}

describe('token realm check', () => {
  it('never sends the credentials to a realm on a host that is not allowed, and names the host', async () => {
    const fake = new FakeUpstream();
    fake.add(makeImage('team/app', 'v1', [10]));
    challengeWith(fake, 'https://evil.test/token');
    m = await startTestMirror(fake);
    const res = await m.request('/v2/team/app/manifests/v1');
    expect(res.status).toBe(502);
    const text = await res.text();
    expect(text).toContain('token realm host evil.test');
    expect(text).not.toContain(fake.password);
    expect(fake.calls.filter((c) => c.host === 'evil.test')).toEqual([]);
  });

  it('allows a realm on one of the upstream aliases', async () => {
    const fake = new FakeUpstream();
    fake.add(makeImage('team/app', 'v1', [10]));
    m = await startTestMirror(fake, { upstream: { token_realms: [], aliases: ['auth.test'] } });
    expect((await m.request('/v2/team/app/manifests/v1')).status).toBe(200);
  });

  it('refuses the default realm list a realm it does not name (token_realms empty: auth.test no longer allowed)', async () => {
    const fake = new FakeUpstream();
    fake.add(makeImage('team/app', 'v1', [10]));
    m = await startTestMirror(fake, { upstream: { token_realms: [] } });
    const res = await m.request('/v2/team/app/manifests/v1');
    expect(res.status).toBe(502);
    expect((await errorOf(res)).message).toContain('token realm host auth.test');
    expect(fake.count({ host: 'auth.test' })).toBe(0);
  });

  it('keeps refusing a plain-http realm under an https registry, even on an allowed host', async () => {
    const fake = new FakeUpstream();
    fake.add(makeImage('team/app', 'v1', [10]));
    challengeWith(fake, 'http://auth.test/token');
    m = await startTestMirror(fake);
    const res = await m.request('/v2/team/app/manifests/v1');
    expect(res.status).toBe(502);
    expect((await errorOf(res)).message).toContain('refusing to send credentials to a plain-HTTP token realm');
    expect(fake.count({ host: 'auth.test' })).toBe(0);
  });
});

describe('RealmPolicy', () => {
  const policy = (url: string, extra: { aliases?: string[]; token_realms?: string[]; insecure?: boolean } = {}) =>
    new RealmPolicy({ url, aliases: [], token_realms: [...DEFAULT_TOKEN_REALMS], insecure: false, ...extra });
  const allowed = (p: RealmPolicy, realm: string) => {
    try {
      p.check(new URL(realm), 'upstream acr');
      return true;
    } catch {
      return false;
    }
  };

  it.each([
    ['https://registry.cn-hangzhou.aliyuncs.com', 'https://dockerauth.cn-hangzhou.aliyuncs.com/auth', true],
    ['https://registry-vpc.cn-shanghai.aliyuncs.com', 'https://dockerauth-vpc.cn-shanghai.aliyuncs.com/auth', true],
    ['https://corp-registry-vpc.cn-shanghai.cr.aliyuncs.com', 'https://dockerauth-ee.cn-shanghai.aliyuncs.com/auth', true],
    ['https://corp-registry.ap-southeast-1.cr.aliyuncs.com', 'https://dockerauth-ee-vpc.ap-southeast-1.aliyuncs.com/auth', true],
    // an Enterprise instance's own host, by its public or its VPC name
    ['https://corp-registry-vpc.cn-shanghai.cr.aliyuncs.com', 'https://corp-registry.cn-shanghai.cr.aliyuncs.com/service/token', true],
    ['https://corp-registry.cn-shanghai.cr.aliyuncs.com', 'https://corp-registry-vpc.cn-shanghai.cr.aliyuncs.com/service/token', true],
    // the registry's own host: ports are not compared
    ['http://127.0.0.1:5001', 'http://127.0.0.1:5002/auth', true],
    ['https://registry.cn-hangzhou.aliyuncs.com', 'https://dockerauth.evil.com/auth', false],
    ['https://registry.cn-hangzhou.aliyuncs.com', 'https://dockerauth.cn-hangzhou.aliyuncs.com.evil.com/auth', false],
    ['https://registry.cn-hangzhou.aliyuncs.com', 'https://evil.aliyuncs.com/auth', false],
    ['https://registry.cn-hangzhou.aliyuncs.com', 'https://x.dockerauth.cn-hangzhou.aliyuncs.com/auth', false],
    ['https://corp-registry.cn-shanghai.cr.aliyuncs.com', 'https://other-registry.cn-shanghai.cr.aliyuncs.com/service/token', false],
    ['https://registry.cn-hangzhou.aliyuncs.com', 'http://dockerauth.cn-hangzhou.aliyuncs.com/auth', false],
  ])('registry %s, realm %s: allowed %s', (url, realm, expected) => {
    expect(allowed(policy(url), realm)).toBe(expected);
  });

  it('a plain-http realm on another host needs insecure', () => {
    expect(allowed(policy('http://10.0.0.1:5000', { token_realms: ['auth.lan'] }), 'http://auth.lan/token')).toBe(false);
    expect(allowed(policy('http://10.0.0.1:5000', { token_realms: ['auth.lan'], insecure: true }), 'http://auth.lan/token')).toBe(true);
  });
});

describe('blob redirects', () => {
  const toPlainHttp = (fake: FakeUpstream) => {
    fake.intercept = (call) =>
      call.host === 'registry.test' && call.path.includes('/blobs/') && call.authorization
        ? new Response(null, { status: 307, headers: { location: `http://oss.test${call.path.replace(/^\/v2\/.+\/blobs/, '/blobs')}?Expires=9999999999&Signature=sig` } })
        : undefined;
  };

  it('refuses a redirect from https to plain http', async () => {
    const fake = new FakeUpstream();
    const img = fake.add(makeImage('team/app', 'v1', [1000]));
    toPlainHttp(fake);
    m = await startTestMirror(fake);
    const res = await m.request(`/v2/team/app/blobs/${[...img.blobs.keys()][1]}`);
    expect(res.status).toBe(502);
    expect((await errorOf(res)).message).toContain('redirected from https to plain http (oss.test)');
    expect(fake.count({ host: 'oss.test' })).toBe(0);
  });

  it('follows it when the upstream is insecure', async () => {
    const fake = new FakeUpstream();
    const img = fake.add(makeImage('team/app', 'v1', [1000]));
    toPlainHttp(fake);
    m = await startTestMirror(fake, { upstream: { insecure: true } });
    const res = await m.request(`/v2/team/app/blobs/${[...img.blobs.keys()][1]}`);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals([...img.blobs.values()][1]!)).toBe(true);
  });
});

describe('a token service refusing one repository', () => {
  const refuseScope = (fake: FakeUpstream, status: number) => {
    fake.intercept = (call) =>
      call.host === 'auth.test' && call.path.includes('scope=repository%3Asecret%2Fx%3Apull')
        ? Response.json({ errors: [{ code: 'DENIED' }] }, { status })
        : undefined;
  };

  it.each([401, 403])('answers %i for that name as 403 DENIED, and never marks the upstream down for the others', async (status) => {
    const fake = new FakeUpstream();
    fake.add(makeImage('team/app', 'v1', [10]));
    refuseScope(fake, status);
    m = await startTestMirror(fake);
    // breaker_threshold is 5: more refusals than that
    for (let i = 0; i < 7; i++) {
      const res = await m.request('/v2/secret/x/manifests/v1');
      expect(res.status).toBe(403);
      const error = await errorOf(res);
      expect(error.code).toBe('DENIED');
      expect(error.message).toContain('refused repository:secret/x:pull');
    }
    expect((await m.request('/v2/team/app/manifests/v1')).status).toBe(200);
  });

  it('still reports wrong credentials as a failed login when every scope is refused', async () => {
    const fake = new FakeUpstream();
    fake.add(makeImage('team/app', 'v1', [10]));
    m = await startTestMirror(fake);
    fake.password = 'rotated';
    const res = await m.request('/v2/team/app/manifests/v1');
    expect(res.status).toBe(502);
    expect((await errorOf(res)).message).toContain('rejected the credentials of user mirror (401)');
  });
});
