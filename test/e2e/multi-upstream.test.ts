// Two ACR-like upstreams with different credentials, each served over TLS under its real ACR host names (token
// realm and "OSS" blob host too) with a CA made by the test, all on 127.0.0.1 and reached only through the
// mirror's `hosts` pins and `ca_file`. skopeo (and plain fetch for containerd's ?ns=) pulls through the mirror
// by every kind of name; content is compared byte for byte and each upstream must see only its own traffic.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltImage } from './harness/images.js';
import { expectCacheConsistent, expectSameImage } from './harness/mirror-check.js';
import { startMirror, type MirrorProcess } from './harness/mirror-process.js';
import { createTestCa, type TestCa } from './harness/tls.js';
import { startUpstream, type Upstream } from './harness/upstream.js';

/** ACR Personal Edition, Hangzhou. */
const HZ = {
  registryHost: 'registry.cn-hangzhou.aliyuncs.com',
  authHost: 'dockerauth.cn-hangzhou.aliyuncs.com',
  ossHost: 'acr-bucket.oss-cn-hangzhou-internal.aliyuncs.com',
  ossWildcard: '*.oss-cn-hangzhou-internal.aliyuncs.com',
  service: 'registry.aliyuncs.com:cn-hangzhou:26842',
  credentials: { username: 'acr-user-a@1234567890', password: 'password-of-user-a' },
};
/** ACR Enterprise Edition instance "corp", Shanghai, VPC endpoint. */
const SH = {
  registryHost: 'corp-registry-vpc.cn-shanghai.cr.aliyuncs.com',
  authHost: 'dockerauth-ee.cn-shanghai.aliyuncs.com',
  ossHost: 'cri-corp0123456789-registry.oss-cn-shanghai-internal.aliyuncs.com',
  ossWildcard: '*.oss-cn-shanghai-internal.aliyuncs.com',
  service: 'registry.aliyuncs.com:cn-shanghai:china:cri-corp0123456789',
  credentials: { username: 'acr-user-b@9876543210', password: 'another-password-of-user-b' },
};
type Site = typeof HZ;

const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

/** An [upstreams.<name>] block: pins for the registry, realm and OSS (wildcard) names, and the test CA unless told. */
function upstreamToml(name: string, up: Upstream, site: Site, passwordEnv: string, opts: { ca?: boolean; extra?: string } = {}): string {
  const tls = up.tls!;
  return `
[upstreams.${name}]
url = "${up.registryUrl}"
username = "${up.credentials.username}"
password_env = "${passwordEnv}"
aliases = ["${site.registryHost}"]
hosts = { "${tls.registryHost}" = "127.0.0.1", "${tls.authHost}" = "127.0.0.1", "${site.ossWildcard}" = "127.0.0.1" }
${opts.ca === false ? '' : `ca_file = "${tls.caFile}"`}
retry_max_delay = "1s"
${opts.extra ?? ''}
`;
}

describe('two TLS upstreams behind pinned ACR host names', () => {
  let caDir: string;
  let ca: TestCa;
  let hz: Upstream;
  let sh: Upstream;
  let mirror: MirrorProcess;
  let img: Record<'nginx' | 'tool' | 'app' | 'api', BuiltImage>;

  beforeAll(async () => {
    caDir = await mkdtemp(join(tmpdir(), 'acr-test-ca-'));
    ca = await createTestCa(caDir);
    const start = (site: Site) =>
      startUpstream({
        tls: { ca, registryHost: site.registryHost, authHost: site.authHost, ossHost: site.ossHost },
        mirrorCredentials: site.credentials,
        service: site.service,
      });
    // allSettled: if one fails to start, afterAll must still stop the other
    const started = await Promise.allSettled([start(HZ), start(SH)]);
    if (started[0].status === 'fulfilled') hz = started[0].value;
    if (started[1].status === 'fulfilled') sh = started[1].value;
    for (const s of started) if (s.status === 'rejected') throw s.reason;
    const [nginx, tool, app, api] = await Promise.all([
      hz.pushImage({ kind: 'docker-list', repo: 'hub-mirror/nginx', tag: '1.25', layers: [300_000], seed: 'mu-nginx' }),
      hz.pushImage({ kind: 'oci', repo: 'acr-ns/tool', tag: '2.0', layers: [200_000, 100_000], seed: 'mu-tool' }),
      sh.pushImage({ kind: 'docker', repo: 'company_team/app', tag: 'v1', layers: [400_000], seed: 'mu-app' }),
      sh.pushImage({ kind: 'oci-index', repo: 'company_team/api', tag: 'v3', layers: [150_000], seed: 'mu-api' }),
    ]);
    img = { nginx, tool, app, api };
    mirror = await startMirror({
      config: `
[storage]
dir = "{{data}}"
[log]
level = "debug"
${upstreamToml('hz', hz, HZ, 'HZ_PASSWORD')}
${upstreamToml('sh', sh, SH, 'SH_PASSWORD')}
[[routes]]
prefix = "library"
upstream = "hz"
rewrite = "hub-mirror"
[[routes]]
prefix = "team"
upstream = "sh"
rewrite = "company_team"
`,
      env: { HZ_PASSWORD: HZ.credentials.password, SH_PASSWORD: SH.credentials.password },
    });
  });

  afterAll(async () => {
    await mirror?.stop();
    await Promise.all([hz?.stop(), sh?.stop()]);
    if (caDir) await rm(caDir, { recursive: true, force: true });
  });

  const pull = async (name: string, image: BuiltImage, out: string): Promise<void> => {
    const r = await hz.skopeo(['copy', '--all', '--src-tls-verify=false', `docker://${mirror.host}/${name}`, `dir:${out}`]);
    expect(r.code, r.stderr).toBe(0);
    await expectSameImage(out, image);
  };

  it('upstreams announce only host names (registry, realm, signed OSS links)', () => {
    for (const [up, site] of [[hz, HZ], [sh, SH]] as const) {
      expect(up.registryUrl).toMatch(new RegExp(`^https://${site.registryHost.replaceAll('.', '\\.')}:\\d+$`));
      expect(up.tls?.realm).toMatch(new RegExp(`^https://${site.authHost.replaceAll('.', '\\.')}:\\d+/auth$`));
      expect(up.proxy.ossUrl).toMatch(new RegExp(`^https://${site.ossHost.replaceAll('.', '\\.')}:\\d+$`));
    }
  });

  it('pulls a Docker Hub name (library/...) routed to the first upstream with a rewritten namespace', async () => {
    await pull(`library/nginx:${img.nginx.tag}`, img.nginx, join(hz.dir, 'pull-hub'));
  });

  it('pulls a rewritten namespace (team/... -> company_team/...) from the second upstream', async () => {
    await pull(`team/app:${img.app.tag}`, img.app, join(sh.dir, 'pull-team'));
  });

  it('pulls with the upstream host as the first path segment (an alias without port)', async () => {
    // no [[routes]] entry covers acr-ns: only the in-path host can select the upstream
    const unrouted = await fetch(`${mirror.url}/v2/${img.tool.repo}/manifests/${img.tool.tag}`, { headers: { accept: ACCEPT } });
    expect(unrouted.status).toBe(404);
    await unrouted.arrayBuffer();
    await pull(`${HZ.registryHost}/${img.tool.repo}:${img.tool.tag}`, img.tool, join(hz.dir, 'pull-in-path'));
  });

  it('serves containerd-style ?ns=<registry host:port> requests (manifests by tag and digest, blobs)', async () => {
    const ns = new URL(sh.registryUrl).host;
    const base = `${mirror.url}/v2/${img.api.repo}`;
    const get = async (path: string, accept = ACCEPT): Promise<Buffer> => {
      const res = await fetch(`${base}/${path}?ns=${encodeURIComponent(ns)}`, { headers: { accept } });
      const body = Buffer.from(await res.arrayBuffer());
      expect(res.status, `${path}: ${body.toString().slice(0, 300)}`).toBe(200);
      return body;
    };
    const unrouted = await fetch(`${base}/manifests/${img.api.tag}`, { headers: { accept: ACCEPT } });
    expect(unrouted.status).toBe(404);
    await unrouted.arrayBuffer();

    expect((await get(`manifests/${img.api.tag}`)).equals(img.api.manifest)).toBe(true);
    for (const m of img.api.manifests) {
      // containerd's later requests: Accept of the descriptor's media type, then */*
      expect((await get(`manifests/${m.digest}`, `${m.mediaType}, */*`)).equals(m.bytes)).toBe(true);
    }
    const { readFile } = await import('node:fs/promises');
    for (const blob of img.api.blobs) {
      expect((await get(`blobs/${blob.digest}`, `${blob.mediaType}, */*`)).equals(await readFile(blob.path))).toBe(true);
    }

    // the bare alias works for ns as well (HEAD: digest only)
    const head = await fetch(`${mirror.url}/v2/${img.nginx.repo}/manifests/${img.nginx.tag}?ns=${HZ.registryHost}`, {
      method: 'HEAD',
      headers: { accept: ACCEPT },
    });
    expect(head.status).toBe(200);
    expect(head.headers.get('docker-content-digest')).toBe(img.nginx.digest);
  });

  it('each upstream saw only its own repositories, its own user, and TLS connections by name (SNI)', async () => {
    const own = [
      { up: hz, site: HZ, repos: ['hub-mirror/nginx', 'acr-ns/tool'], images: [img.nginx, img.tool] },
      { up: sh, site: SH, repos: ['company_team/app', 'company_team/api'], images: [img.app, img.api] },
    ];
    for (const { up, site, repos, images } of own) {
      const registry = up.proxy.filter({ front: 'registry' });
      const oss = up.proxy.filter({ front: 'oss' });
      expect(registry.length).toBeGreaterThan(0);
      expect(oss.length).toBeGreaterThan(0);
      const repoOf = (path: string) => /^\/v2\/(.+)\/(manifests|blobs)\/[^/]+$/.exec(path)?.[1] ?? path;
      expect(new Set(registry.map((r) => repoOf(r.path)).filter((p) => p !== '/v2/'))).toEqual(new Set(repos));
      const ownBlobs = new Set(images.flatMap((i) => i.blobs.map((b) => b.digest.slice('sha256:'.length))));
      for (const r of oss) expect(ownBlobs.has(/\/([0-9a-f]{64})\/data$/.exec(r.path)?.[1] ?? r.path), r.path).toBe(true);
      // every connection named the ACR host in SNI: the mirror dialled the pinned name, not an address
      expect(new Set(registry.map((r) => r.servername))).toEqual(new Set([site.registryHost]));
      expect(new Set(oss.map((r) => r.servername))).toEqual(new Set([site.ossHost]));
      for (const r of registry.filter((x) => x.location)) expect(r.location!.startsWith(`${up.proxy.ossUrl}/`)).toBe(true);
      expect(oss.every((r) => !r.authorization)).toBe(true);

      const tokenRequests = up.tokenServer.requests.filter((t) => t.tls);
      expect(tokenRequests.length).toBeGreaterThan(0);
      expect(new Set(tokenRequests.map((t) => t.user))).toEqual(new Set([site.credentials.username]));
      expect(new Set(tokenRequests.map((t) => t.servername))).toEqual(new Set([site.authHost]));
      expect(tokenRequests.every((t) => t.status === 200)).toBe(true);
      const scoped = new Set(tokenRequests.flatMap((t) => t.scope.map((s) => s.split(':')[1])));
      expect([...scoped].every((r) => repos.includes(r!))).toBe(true);
      expect(new Set(up.tokenServer.issued.filter((t) => t.servername).map((t) => t.service))).toEqual(new Set([site.service]));
      // the plain listener only ever served the push user
      expect(up.tokenServer.requests.filter((t) => !t.tls).every((t) => t.user === 'pusher')).toBe(true);
    }
    await expectCacheConsistent(mirror.dataDir);
  });

  it('without ca_file the mirror refuses the upstream certificate and says so', async () => {
    const before = hz.proxy.records.length;
    const tokensBefore = hz.tokenServer.requests.length;
    const untrusting = await startMirror({
      config: `
[storage]
dir = "{{data}}"
${upstreamToml('hz', hz, HZ, 'HZ_PASSWORD', { ca: false, extra: 'retries = 1' })}
[[routes]]
prefix = "library"
upstream = "hz"
rewrite = "hub-mirror"
`,
      env: { HZ_PASSWORD: HZ.credentials.password },
    });
    try {
      const res = await fetch(`${untrusting.url}/v2/library/nginx/manifests/${img.nginx.tag}`, { headers: { accept: ACCEPT } });
      const body = (await res.json()) as { errors: Array<{ code: string; message: string }> };
      expect([502, 503], JSON.stringify(body)).toContain(res.status);
      const message = body.errors[0]?.message ?? '';
      console.log(`untrusted CA: ${res.status} ${JSON.stringify(body)}`);
      expect(message).toMatch(/TLS certificate/);
      expect(message).toMatch(/not trusted/);
      expect(message).toContain(HZ.registryHost);
      // the handshake failed: not one HTTP request reached the upstream
      expect(hz.proxy.records.length).toBe(before);
      expect(hz.tokenServer.requests.length).toBe(tokensBefore);
    } finally {
      await untrusting.stop();
    }
  });
});
