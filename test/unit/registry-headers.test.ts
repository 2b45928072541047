// Every /v2 answer tells browsers not to sniff it and not to run anything in it (issue 17, stored XSS), whether
// it is written as a Response (app.request()) or straight into the Node response (a real listener, where HEAD
// and warm answers take the fast paths).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { FakeUpstream, makeImage } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';

const CSP = "default-src 'none'; sandbox";

const fake = new FakeUpstream();
const img = fake.add(makeImage('team/app', 'v1', [1000]));
const blob = [...img.blobs.keys()][0]!;

/** [method, path, expected status]; each path runs twice, so the second answer comes from the cache. */
const CASES: [string, string, number][] = [
  ['GET', '/v2/', 200],
  ['HEAD', '/v2/', 200],
  ['GET', '/v2', 200],
  ['GET', '/v2/team/app/manifests/v1', 200],
  ['HEAD', '/v2/team/app/manifests/v1', 200],
  ['GET', `/v2/team/app/manifests/${img.manifestDigest}`, 200],
  ['HEAD', `/v2/team/app/manifests/${img.manifestDigest}`, 200],
  ['GET', `/v2/team/app/blobs/${blob}`, 200],
  ['HEAD', `/v2/team/app/blobs/${blob}`, 200],
  ['GET', '/v2/team/app/tags/list', 200],
  ['HEAD', '/v2/team/app/tags/list', 200],
  ['GET', '/v2/team/app/manifests/missing', 404],
  ['HEAD', '/v2/team/app/manifests/missing', 404],
  ['GET', `/v2/team/app/blobs/sha256:${'0'.repeat(64)}`, 404],
  ['GET', '/v2/_catalog', 405],
  ['PUT', '/v2/team/app/manifests/v1', 405],
  ['GET', '/v2/team/app/nothing', 404],
];

function expectHardened(res: Response, what: string): void {
  expect(res.headers.get('x-content-type-options'), what).toBe('nosniff');
  expect(res.headers.get('content-security-policy'), what).toBe(CSP);
}

async function runTable(request: (path: string, init: RequestInit) => Promise<Response>): Promise<void> {
  for (const round of ['first', 'cached']) {
    for (const [method, path, status] of CASES) {
      const res = await request(path, { method });
      await res.arrayBuffer();
      const what = `${round} ${method} ${path}`;
      expect(res.status, what).toBe(status);
      expectHardened(res, what);
    }
  }
}

describe('through app.request()', () => {
  let m: TestMirror;
  beforeAll(async () => {
    m = await startTestMirror(fake);
  });
  afterAll(async () => {
    await m.close();
  });

  it('nosniff and the sandbox CSP on every answer', async () => {
    await runTable((path, init) => m.request(path, init));
  });

  it('on a denied client too', async () => {
    const denied = await startTestMirror(fake, { clientAddress: '203.0.113.9' });
    try {
      const res = await denied.request('/v2/');
      expect(res.status).toBe(403);
      expectHardened(res, 'denied');
    } finally {
      await denied.close();
    }
  });
});

describe('through a real listener', () => {
  let server: RunningServer;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'acr-headers-'));
    const config = parseConfig(
      {
        server: { listen: '127.0.0.1:0', shutdown_timeout: '1s' },
        storage: { dir: 'data' },
        upstreams: { acr: { url: 'https://registry.test', token_realms: ['auth.test'], username: fake.user, password_env: 'TEST_ACR_PASSWORD' } },
        routes: [{ prefix: '', upstream: 'acr' }],
      },
      { env: { TEST_ACR_PASSWORD: fake.password }, baseDir: dir, source: 'test' },
    );
    server = await startServer(config, pino({ level: 'silent' }), { fetch: fake.fetch });
  });
  afterAll(async () => {
    await server.shutdown();
    await rm(dir, { recursive: true, force: true });
  });

  it('nosniff and the sandbox CSP on every answer', async () => {
    await runTable((path, init) => fetch(server.url + path, init));
  });
});
