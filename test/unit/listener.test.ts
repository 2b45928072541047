// The listeners themselves (src/server.ts): sockets from addresses no allow-list admits are closed before any
// HTTP is parsed, the connection count is bounded, slow headers and slow request bodies time out, and a download
// that lasts longer than the request timeout is not cut.
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { type RunningServer, startServer, startupWarnings } from '../../src/server.js';
import { ADMIN_ENV, bearer } from '../support/admin.js';
import { FakeUpstream, makeImage } from '../support/fake-upstream.js';

let server: RunningServer | undefined;
let dir: string | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await server?.shutdown();
  server = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function start(doc: Record<string, unknown>, fake = new FakeUpstream()): Promise<RunningServer> {
  dir = await mkdtemp(join(tmpdir(), 'acr-listener-'));
  const { server: serverKeys, ...rest } = doc;
  const config = parseConfig(
    {
      server: { listen: '127.0.0.1:0', shutdown_timeout: '1s', ...(serverKeys as object) },
      storage: { dir: 'data' },
      upstreams: { acr: { url: 'https://registry.test', token_realms: ['auth.test'], username: fake.user, password_env: 'TEST_ACR_PASSWORD' } },
      ...rest,
    },
    { env: { TEST_ACR_PASSWORD: fake.password, ...ADMIN_ENV }, baseDir: dir, source: 'test' },
  );
  server = await startServer(config, pino({ level: 'silent' }), { fetch: fake.fetch });
  return server;
}

const port = (s: RunningServer) => Number(new URL(s.url).port);

/** Connects, sends `send`, and resolves with what came back once the server closed the socket (or after waitMs). */
function exchange(s: RunningServer, send: string, waitMs = 3000): Promise<{ data: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = connect(port(s), '127.0.0.1');
    sockets.push(socket);
    let data = '';
    const timer = setTimeout(() => resolve({ data, closed: false }), waitMs);
    socket.on('connect', () => socket.write(send));
    socket.on('data', (chunk) => (data += chunk.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ data, closed: true });
    });
  });
}

describe('listener', () => {
  it('closes a socket from an address neither access.allow nor admin.allow admits, before any HTTP answer', async () => {
    const s = await start({ access: { allow: ['10.0.0.0/8'] }, admin: { allow: ['10.0.0.0/8'] } });
    const { data, closed } = await exchange(s, 'GET /v2/ HTTP/1.1\r\nHost: mirror\r\n\r\n');
    expect(closed).toBe(true);
    expect(data).toBe('');
  });

  it('keeps a socket that admin.allow alone admits: /v2 answers 403, the admin API works', async () => {
    const s = await start({ access: { allow: ['10.0.0.0/8'] }, admin: { allow: ['127.0.0.0/8'] } });
    expect((await fetch(`${s.url}/v2/`)).status).toBe(403);
    expect((await fetch(`${s.url}/admin/stats`, { headers: bearer() })).status).toBe(200);
  });

  it('refuses connections beyond server.max_connections', async () => {
    const s = await start({ server: { max_connections: 2 } });
    const open = () =>
      new Promise<Socket>((resolve) => {
        const socket = connect(port(s), '127.0.0.1', () => resolve(socket));
        socket.on('error', () => {});
        sockets.push(socket);
      });
    await open();
    await open();
    const third = await exchange(s, 'GET /healthz HTTP/1.1\r\nHost: mirror\r\n\r\n');
    expect(third).toEqual({ data: '', closed: true });
    sockets[0]!.destroy();
    await new Promise((r) => setTimeout(r, 100));
    expect((await exchange(s, 'GET /healthz HTTP/1.1\r\nHost: mirror\r\nConnection: close\r\n\r\n')).data).toMatch(/^HTTP\/1\.1 200/);
  });

  it('closes a connection whose headers take longer than server.headers_timeout', async () => {
    const s = await start({ server: { headers_timeout: '1s' } });
    const started = Date.now();
    const { data, closed } = await exchange(s, 'GET /v2/ HTTP/1.1\r\nHost: mirror\r\n', 4000);
    expect(closed).toBe(true);
    expect(data).toMatch(/^HTTP\/1\.1 408/);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('server.request_timeout bounds receiving a request body, not sending a download', async () => {
    const fake = new FakeUpstream();
    const image = fake.add(makeImage('team/app', 'v1', [4 * 1024 * 1024]));
    const [digest, blob] = [...image.blobs].find(([, b]) => b.length === 4 * 1024 * 1024)!;
    const s = await start({ server: { request_timeout: '1s', headers_timeout: '1s' } }, fake);

    // A client that reads slowly keeps the download open for well over a second, and gets every byte.
    const body = await new Promise<Buffer>((resolve, reject) => {
      const req = httpRequest(`${s.url}/v2/team/app/blobs/${digest}`, (res) => {
        const chunks: Buffer[] = [];
        res.pause();
        setTimeout(() => res.resume(), 2500);
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks)));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    expect(body.length).toBe(blob.length);
    expect(`sha256:${createHash('sha256').update(body).digest('hex')}`).toBe(digest);

    // A body still arriving after a second is cut.
    const { data, closed } = await exchange(s, `POST /admin/import?names=team/app HTTP/1.1\r\nHost: mirror\r\nAuthorization: ${bearer().authorization}\r\nContent-Length: 100000\r\n\r\npartial`, 4000);
    expect(closed).toBe(true);
    expect(data).toMatch(/^HTTP\/1\.1 408/);
  });
});

describe('start-up warnings', () => {
  const warnings = (doc: Record<string, unknown>, env: Record<string, string> = {}) =>
    startupWarnings(parseConfig(doc, { env, baseDir: '/tmp', source: 'test' })).map(([, message]) => message);
  const LAN = { server: { listen: '0.0.0.0:5000' }, access: { allow: ['10.0.0.0/8'] } };

  it('warns when the admin API is served over plain HTTP beyond loopback', () => {
    expect(warnings(LAN, ADMIN_ENV)).toEqual([expect.stringMatching(/^the admin API is served over plain HTTP beyond loopback/)]);
  });

  it.each([
    ['no admin token', LAN, {}],
    ['admin.allow is loopback only', { ...LAN, admin: { allow: ['127.0.0.1'] } }, ADMIN_ENV],
    ['a loopback listener', { access: { allow: ['10.0.0.0/8'] } }, ADMIN_ENV],
  ])('does not with %s', (_why, doc, env) => {
    expect(warnings(doc, env)).toEqual([]);
  });

  it('refuses a headers_timeout beyond request_timeout (Node would throw at listen)', () => {
    expect(() => parseConfig({ server: { headers_timeout: '2m', request_timeout: '1m' } }, { env: {}, baseDir: '/tmp', source: 'test' })).toThrow(
      'server.request_timeout: must be at least headers_timeout (or 0s: no limit)',
    );
    expect(parseConfig({ server: { request_timeout: '0s' } }, { env: {}, baseDir: '/tmp', source: 'test' }).server.request_timeout).toBe(0);
  });
});
