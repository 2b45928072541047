import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeUpstream, makeImage } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';

const AK = { id: 'LTAI5tTestKeyId', secret: 'test-access-key-secret' };

/** RFC 3986 encoding as Alibaba Cloud's POP signature defines it. */
const popEncode = (s: string) =>
  encodeURIComponent(s).replace(/!/g, '%21').replace(/'/g, '%27').replace(/\(/g, '%28').replace(/\)/g, '%29').replace(/\*/g, '%2A');

/** Verifies the signature of an RPC (Enterprise, 2018-12-01) request, as the OpenAPI gateway does. */
function rpcSignatureValid(url: URL): boolean {
  const params = [...url.searchParams.entries()].filter(([k]) => k !== 'Signature').sort(([a], [b]) => (a < b ? -1 : 1));
  const canonical = params.map(([k, v]) => `${popEncode(k)}=${popEncode(v)}`).join('&');
  const expected = createHmac('sha1', `${AK.secret}&`).update(`GET&${popEncode('/')}&${popEncode(canonical)}`).digest('base64');
  return url.searchParams.get('AccessKeyId') === AK.id && url.searchParams.get('Signature') === expected;
}

/** Verifies the `Authorization: acs <id>:<sig>` of a ROA (Personal, 2016-06-07) request. */
function roaSignatureValid(req: IncomingMessage, path: string): boolean {
  const h = req.headers;
  const acs = Object.keys(h)
    .filter((k) => k.startsWith('x-acs-'))
    .sort()
    .map((k) => `${k}:${String(h[k]).trim()}\n`)
    .join('');
  const toSign = `${req.method}\n${h.accept ?? ''}\n${h['content-md5'] ?? ''}\n${h['content-type'] ?? ''}\n${h.date ?? ''}\n${acs}${path}`;
  const expected = createHmac('sha1', AK.secret).update(toSign).digest('base64');
  return h.authorization === `acs ${AK.id}:${expected}`;
}

interface Issued {
  password: string;
  expiresAt: number;
}

/** A local stand-in for ACR's OpenAPI: checks every request's signature and issues short-lived passwords. */
async function startFakeOpenApi(lifetimeMs: number) {
  const issued: Issued[] = [];
  const rejected: string[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://openapi.test');
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const issue = () => {
      const t = { password: `temp-${issued.length + 1}-${Math.random().toString(36).slice(2)}`, expiresAt: Date.now() + lifetimeMs };
      issued.push(t);
      return t;
    };
    if (url.pathname === '/' && url.searchParams.get('Action') === 'GetAuthorizationToken') {
      if (!rpcSignatureValid(url) || url.searchParams.get('InstanceId') !== 'cri-test123' || url.searchParams.get('Version') !== '2018-12-01') {
        rejected.push(url.search);
        return send(400, { Code: 'SignatureDoesNotMatch', Message: 'bad signature', RequestId: 'r' });
      }
      const t = issue();
      return send(200, { AuthorizationToken: t.password, TempUsername: 'cr_temp_user', ExpireTime: t.expiresAt, IsSuccess: true, RequestId: 'r' });
    }
    if (url.pathname === '/tokens' && req.method === 'GET') {
      if (!roaSignatureValid(req, '/tokens') || req.headers['x-acs-version'] !== '2016-06-07') {
        rejected.push(url.pathname);
        return send(400, { code: 'SignatureDoesNotMatch', message: 'bad signature', requestId: 'r' });
      }
      const t = issue();
      return send(200, { data: { authorizationToken: t.password, tempUserName: 'cr_temp_user', expireDate: t.expiresAt }, requestId: 'r' });
    }
    send(404, { Code: 'InvalidAction.NotFound' });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    issued,
    rejected,
    /** The token service's view: a temporary password is good until it expires. */
    accepts: (user: string, password: string) => user === 'cr_temp_user' && issued.some((t) => t.password === password && Date.now() < t.expiresAt),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('ACR temporary credentials', () => {
  let m: TestMirror | undefined;
  let api: Awaited<ReturnType<typeof startFakeOpenApi>> | undefined;
  afterEach(async () => {
    await m?.close();
    await api?.close();
  });

  it.each([
    ['enterprise', { edition: 'enterprise', instance_id: 'cri-test123' }],
    ['personal', { edition: 'personal' }],
  ])('%s: signs GetAuthorizationToken with the AccessKey and renews the password before it expires', async (_name, edition) => {
    api = await startFakeOpenApi(1500);
    const fake = new FakeUpstream();
    fake.acceptLogin = api.accepts;
    fake.tokenLifetimeSec = 1; // every pull below needs a fresh bearer token, hence a valid password
    for (let i = 1; i <= 4; i++) fake.add(makeImage(`team/app${i}`, 'v1', [10], i));
    m = await startTestMirror(fake, {
      upstream: { temporary_credentials: { ...edition, region: 'cn-hangzhou', endpoint: api.endpoint, refresh_before: '1s' } },
      env: { ALIBABA_CLOUD_ACCESS_KEY_ID: AK.id, ALIBABA_CLOUD_ACCESS_KEY_SECRET: AK.secret },
    });
    for (let i = 1; i <= 4; i++) {
      const res = await m.request(`/v2/team/app${i}/manifests/v1`);
      expect(res.status, `pull ${i}`).toBe(200);
      await new Promise((r) => setTimeout(r, 350));
    }
    expect(api.rejected).toEqual([]);
    // 1.5 s lifetime, renewed 1 s early: usable for 0.5 s, so four pulls 350 ms apart need at least two logins
    expect(api.issued.length).toBeGreaterThanOrEqual(2);
    expect(api.issued.length).toBeLessThanOrEqual(4);
    expect(fake.calls.filter((c) => c.host === 'auth.test').length).toBe(4);
  });

  it('reports a refused AccessKey as 502 naming the upstream and the service error, never the secret', async () => {
    api = await startFakeOpenApi(60_000);
    const fake = new FakeUpstream();
    fake.add(makeImage('team/app', 'v1', [10]));
    m = await startTestMirror(fake, {
      upstream: { temporary_credentials: { edition: 'enterprise', instance_id: 'cri-test123', region: 'cn-hangzhou', endpoint: api.endpoint } },
      env: { ALIBABA_CLOUD_ACCESS_KEY_ID: AK.id, ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'a-wrong-secret' },
    });
    const res = await m.request('/v2/team/app/manifests/v1');
    expect(res.status).toBe(502);
    const text = await res.text();
    expect(JSON.parse(text).errors[0].message).toBe(
      `upstream acr: GetAuthorizationToken at ${new URL(api.endpoint).host} failed: SignatureDoesNotMatch`,
    );
    expect(text).not.toContain('a-wrong-secret');
    expect(text).not.toContain('Signature=');
  });

  it('a token service refusing one repository keeps the temporary password (no new GetAuthorizationToken)', async () => {
    api = await startFakeOpenApi(60 * 60_000);
    const fake = new FakeUpstream();
    fake.acceptLogin = api.accepts;
    fake.add(makeImage('team/app', 'v1', [10]));
    fake.intercept = (call) =>
      call.host === 'auth.test' && call.path.includes('secret%2Fx') ? Response.json({ errors: [{ code: 'DENIED' }] }, { status: 403 }) : undefined;
    m = await startTestMirror(fake, {
      upstream: { temporary_credentials: { edition: 'enterprise', instance_id: 'cri-test123', region: 'cn-hangzhou', endpoint: api.endpoint } },
      env: { ALIBABA_CLOUD_ACCESS_KEY_ID: AK.id, ALIBABA_CLOUD_ACCESS_KEY_SECRET: AK.secret },
    });
    expect((await m.request('/v2/team/app/manifests/v1')).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await m.request('/v2/secret/x/manifests/v1')).status).toBe(403);
    expect((await m.request('/v2/team/app/manifests/v1')).status).toBe(200);
    expect(api.issued).toHaveLength(1);
  });
});
