// Outbound proxies: the mirror reaches the registry, its token service and OSS through a configured proxy or
// the HTTP(S)_PROXY environment, or directly when told to ignore it.
import { createServer, request, type Server } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltImage } from './harness/images.js';
import { expectSameImage, mirrorConfig } from './harness/mirror-check.js';
import { startMirror } from './harness/mirror-process.js';
import { freePort } from './harness/ports.js';
import { startUpstream, type Upstream } from './harness/upstream.js';

/** A forward proxy (CONNECT tunnels and absolute-form requests) that records the host:port of every target. */
async function startForwardProxy(): Promise<{ url: string; targets: string[]; stop(): Promise<void> }> {
  const targets: string[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '');
    targets.push(url.host);
    const upstream = request(url, { method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('connect', (req, socket, head) => {
    targets.push(req.url ?? '');
    const [host, port] = (req.url ?? '').split(':');
    const tunnel = connect(Number(port), host, () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      tunnel.write(head);
      tunnel.pipe(socket);
      socket.pipe(tunnel);
    });
    tunnel.on('error', () => socket.destroy());
    socket.on('error', () => tunnel.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    targets,
    stop: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

describe('outbound proxy', () => {
  let up: Upstream;
  let images: BuiltImage[];
  let fwd: Awaited<ReturnType<typeof startForwardProxy>>;

  beforeAll(async () => {
    up = await startUpstream();
    images = await Promise.all([1, 2, 3].map((i) => up.pushImage({ kind: 'oci', repo: `team/proxied-${i}`, tag: 'v1', layers: [200_000], seed: `proxy-${i}` })));
    fwd = await startForwardProxy();
  });
  afterAll(async () => {
    await fwd?.stop();
    await up?.stop();
  });

  const pull = async (mirrorHost: string, image: BuiltImage) => {
    const out = join(up.dir, `proxied-${image.repo.replace('/', '-')}`);
    const r = await up.skopeo(['copy', '--src-tls-verify=false', `docker://${mirrorHost}/${image.repo}:v1`, `dir:${out}`]);
    expect(r.code, r.stderr).toBe(0);
    await expectSameImage(out, image);
  };
  const hosts = () => ({
    registry: new URL(up.registryUrl).host,
    oss: new URL(up.proxy.ossUrl).host,
    token: new URL(up.tokenServer.realm).host,
  });

  it('sends registry, token and OSS traffic through the upstream proxy setting', async () => {
    const mirror = await startMirror({ config: mirrorConfig(up, `proxy = "${fwd.url}"`), env: { ACR_PASSWORD: up.credentials.password } });
    try {
      fwd.targets.length = 0;
      await pull(mirror.host, images[0]!);
      const seen = new Set(fwd.targets);
      for (const host of Object.values(hosts())) expect(seen, host).toContain(host);
    } finally {
      await mirror.stop();
    }
  });

  it('uses HTTP_PROXY from the environment when no proxy is configured', async () => {
    const mirror = await startMirror({
      config: mirrorConfig(up),
      env: { ACR_PASSWORD: up.credentials.password, HTTP_PROXY: fwd.url, NO_PROXY: '' },
    });
    try {
      fwd.targets.length = 0;
      await pull(mirror.host, images[1]!);
      expect(new Set(fwd.targets)).toContain(hosts().registry);
      expect(new Set(fwd.targets)).toContain(hosts().oss);
    } finally {
      await mirror.stop();
    }
  });

  it('proxy = "" ignores the environment and connects directly', async () => {
    const closed = await freePort();
    const mirror = await startMirror({
      config: mirrorConfig(up, 'proxy = ""'),
      env: { ACR_PASSWORD: up.credentials.password, HTTP_PROXY: `http://127.0.0.1:${closed}`, HTTPS_PROXY: `http://127.0.0.1:${closed}`, NO_PROXY: '' },
    });
    try {
      fwd.targets.length = 0;
      await pull(mirror.host, images[2]!);
      expect(fwd.targets).toEqual([]);
    } finally {
      await mirror.stop();
    }
  });
});
