// Real clients (Debian's podman 4.3, containerd 1.6 + ctr, docker.io 20.10) pulling through the mirror the way they
// are configured in production: a registries.conf mirror, a containerd hosts.toml (which adds ?ns=), Docker's
// registry-mirrors (Docker Hub names only). Content is compared digest for digest with what was pushed upstream;
// a recording tap in front of the mirror shows what each client sent; a tripwire proxy proves nothing left.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  amd64,
  createPodman,
  expectPulledImage,
  needClient,
  startContainerd,
  startDockerd,
  startTripwire,
  type Tripwire,
} from './harness/clients.js';
import { FaultProxy, type RequestRecord } from './harness/fault-proxy.js';
import type { BuiltImage } from './harness/images.js';
import { mirrorConfig } from './harness/mirror-check.js';
import { startMirror, type MirrorProcess } from './harness/mirror-process.js';
import { startUpstream, type Upstream } from './harness/upstream.js';

/** A made-up ACR host: clients name it, nothing resolves it, the mirror answers for it. */
const ACR_HOST = 'registry.cn-hangzhou.aliyuncs.com';

describe('real clients pull through the mirror', () => {
  let up: Upstream;
  let mirror: MirrorProcess;
  /** Between the clients and the mirror: records every request as the client sent it (no faults are set). */
  let tap: FaultProxy;
  let tapHost: string;
  let tripwire: Tripwire;
  let images: Record<'podman' | 'podmanMirror' | 'ctr' | 'hub' | 'dockerDirect', BuiltImage>;

  beforeAll(async () => {
    tripwire = await startTripwire();
    up = await startUpstream();
    const [podman, podmanMirror, ctr, hub, dockerDirect] = await Promise.all([
      up.pushImage({ kind: 'docker', repo: 'team/podman-direct', tag: 'v1', layers: [400_000, 100_000], seed: 'clients/podman' }),
      up.pushImage({ kind: 'oci', repo: 'team/podman-mirror', tag: '1.0', layers: [300_000], seed: 'clients/podman-mirror' }),
      up.pushImage({ kind: 'oci-index', repo: 'team/ctr-multi', tag: 'v2', layers: [300_000, 50_000], seed: 'clients/ctr' }),
      up.pushImage({ kind: 'docker-list', repo: 'library/nginx', tag: 'latest', layers: [500_000, 60_000], seed: 'clients/hub' }),
      up.pushImage({ kind: 'docker', repo: 'team/docker-direct', tag: 'v3', layers: [200_000], seed: 'clients/docker-direct' }),
    ]);
    images = { podman, podmanMirror, ctr, hub, dockerDirect };
    mirror = await startMirror({
      config: mirrorConfig(up, `aliases = ["${ACR_HOST}"]`),
      env: { ACR_PASSWORD: up.credentials.password },
    });
    tap = await FaultProxy.start({ registryTarget: mirror.url, ossTarget: 'http://127.0.0.1:9' });
    tapHost = new URL(tap.registryUrl).host;
  });

  afterAll(async () => {
    await tap?.stop();
    await mirror?.stop();
    await up?.stop();
    await tripwire?.stop();
  });

  /** The requests the client made since `from`, as `METHOD path?query`. */
  const sent = (from: number): RequestRecord[] => tap.records.slice(from);
  const line = (r: RequestRecord) => `${r.method} ${r.path}${r.query}`;

  /** The upstream saw the manifest and every blob of the linux/amd64 image, each blob read through OSS. */
  const expectUpstreamServed = (image: BuiltImage) => {
    const manifestRequests = up.proxy.count({ front: 'registry', path: `/v2/${image.repo}/manifests/${image.tag}` });
    expect(manifestRequests, `upstream manifest requests for ${image.repo}:${image.tag}`).toBeGreaterThan(0);
    const platform = amd64(image);
    for (const blob of [platform.config, ...platform.layers]) {
      // One download each, answering the fill's bounded probe (206: each blob is shorter than one fill segment).
      expect(up.proxy.count({ front: 'oss', method: 'GET', status: 206, blob: blob.digest }), `OSS GET of ${blob.digest}`).toBe(1);
    }
  };

  /** Every request succeeded at the mirror, and nothing reached the tripwire (no fallback left the machine). */
  const expectCleanRun = (records: RequestRecord[]) => {
    expect(records.filter((r) => r.status >= 400).map((r) => `${line(r)} -> ${r.status}`)).toEqual([]);
    expect(tripwire.hits).toEqual([]);
    expect(tripwire.connections).toBe(0);
  };

  /** The mirror's own request log has a line for every request the tap forwarded. */
  const expectMirrorLogged = (records: RequestRecord[]) => {
    const logged = mirror
      .logs()
      .split('\n')
      .filter((l) => l.includes('"msg":"request"'))
      .map((l) => JSON.parse(l) as { method: string; path: string; status: number });
    for (const r of records) {
      expect(logged.some((l) => l.method === r.method && l.path === r.path && l.status === r.status), `mirror logged ${line(r)}`).toBe(true);
    }
  };

  /** ACR_MIRROR_CLIENT_TRACE=1 prints what each client sent (and, for misses, its error and the tripwire's hits). */
  const trace = (client: string, records: RequestRecord[], stderr?: string) => {
    if (process.env.ACR_MIRROR_CLIENT_TRACE !== '1') return;
    if (stderr !== undefined) console.log(`${client}: ${stderr.trim()}\ntripwire: ${JSON.stringify(tripwire.hits)}`);
    const rows = records.map((r) => `  ${line(r)} -> ${r.status} ${r.bytes}B${r.completed ? '' : ' (cut short)'}  accept=${JSON.stringify(r.headers.accept ?? '')} ua=${JSON.stringify(r.headers['user-agent'] ?? '')} connection=${r.headers.connection ?? ''}`);
    console.log(`${client} sent:\n${rows.join('\n')}`);
  };

  it('podman pulls from the mirror by its own name, and as a registries.conf mirror of an ACR host', async (ctx) => {
    const podman = needClient(ctx, await createPodman({
      proxyUrl: tripwire.url,
      registries: [{ location: ACR_HOST, mirrors: [{ location: tapHost, insecure: true }] }],
    }));
    try {
      // 1. Directly: 127.0.0.1:PORT/<name>:<tag>, plain HTTP.
      let from = tap.records.length;
      const direct = await podman.pull(`${tapHost}/${images.podman.repo}:${images.podman.tag}`, ['--tls-verify=false']);
      expect(direct.code, direct.stderr).toBe(0);
      const pulled = await podman.inspect(`${tapHost}/${images.podman.repo}:${images.podman.tag}`);
      await expectPulledImage(pulled, images.podman);
      expect([...pulled.manifests.keys()]).toEqual([images.podman.digest]);
      const directSent = sent(from);
      trace('podman (direct)', directSent);
      expect(directSent.map(line)).toContain('GET /v2/');
      expect(directSent.map(line)).toContain(`GET /v2/${images.podman.repo}/manifests/${images.podman.tag}`);
      expect(directSent.filter((r) => r.query !== '')).toEqual([]);
      expectUpstreamServed(images.podman);
      expectMirrorLogged(directSent);

      // 2. As a mirror of the ACR host: the client names registry.cn-hangzhou.aliyuncs.com/<name>:<tag>.
      from = tap.records.length;
      const ref = `${ACR_HOST}/${images.podmanMirror.repo}:${images.podmanMirror.tag}`;
      const mirrored = await podman.pull(ref);
      expect(mirrored.code, mirrored.stderr).toBe(0);
      const pulledViaMirror = await podman.inspect(ref);
      await expectPulledImage(pulledViaMirror, images.podmanMirror);
      expect([...pulledViaMirror.manifests.keys()]).toEqual([images.podmanMirror.digest]);
      const mirrorSent = sent(from);
      trace('podman (registries.conf mirror)', mirrorSent);
      expect(mirrorSent.map(line)).toContain(`GET /v2/${images.podmanMirror.repo}/manifests/${images.podmanMirror.tag}`);
      expect(mirrorSent.filter((r) => r.query !== '')).toEqual([]);
      expectUpstreamServed(images.podmanMirror);
      expectMirrorLogged(mirrorSent);
      expectCleanRun([...directSent, ...mirrorSent]);

      // The tripwire is live: when the mirror has no such image, podman tries the ACR host itself.
      from = tap.records.length;
      const missing = await podman.pull(`${ACR_HOST}/team/missing:nope`);
      trace('podman (miss)', sent(from), missing.stderr);
      expect(missing.code).not.toBe(0);
      expect(tripwire.hits).toContainEqual({ method: 'CONNECT', target: `${ACR_HOST}:443` });
    } finally {
      tripwire.reset();
      await podman.stop();
    }
  }, 90_000);

  it('containerd (ctr) pulls an ACR host name through a hosts.toml mirror, which adds ?ns=', async (ctx) => {
    const containerd = needClient(ctx, await startContainerd({ proxyUrl: tripwire.url }));
    try {
      await containerd.writeHosts({ registry: ACR_HOST, mirror: tap.registryUrl });
      const ref = `${ACR_HOST}/${images.ctr.repo}:${images.ctr.tag}`;
      const from = tap.records.length;
      const r = await containerd.ctr(['image', 'pull', '--hosts-dir', containerd.hostsDir, ref]);
      expect(r.code, r.stderr + r.stdout).toBe(0);
      const pulled = await containerd.inspect(ref);
      await expectPulledImage(pulled, images.ctr);
      // The index, the amd64 manifest, its config and every layer, byte for byte; nothing of arm64.
      const platform = amd64(images.ctr);
      expect([...pulled.manifests.keys()].sort()).toEqual([images.ctr.digest, platform.digest].sort());
      expect([...pulled.blobs.keys()].sort()).toEqual([platform.config, ...platform.layers].map((b) => b.digest).sort());
      const arm64 = images.ctr.manifests.find((m) => m.platform.architecture === 'arm64')!;
      expect(await containerd.content(arm64.digest)).toBeUndefined();

      const ctrSent = sent(from);
      trace('containerd (hosts.toml)', ctrSent);
      // Every request carries the registry the client meant.
      expect(ctrSent.filter((r) => r.query !== `?ns=${ACR_HOST}`).map(line)).toEqual([]);
      expect(ctrSent.map((r) => `${r.method} ${r.path}`)).toContain(`HEAD /v2/${images.ctr.repo}/manifests/${images.ctr.tag}`);
      expectUpstreamServed(images.ctr);
      expectMirrorLogged(ctrSent);
      expectCleanRun(ctrSent);

      // Pulled again while the upstream answers every request with 503: the tag containerd resolved with HEAD was
      // recorded when its manifest was fetched by digest, so the mirror answers from its cache alone.
      up.proxy.faults.add({ front: 'registry', path: /.*/, kind: 'status', status: 503, times: Infinity });
      try {
        const removed = await containerd.ctr(['image', 'rm', '--sync', ref]);
        expect(removed.code, removed.stderr).toBe(0);
        const upstreamBefore = up.proxy.count();
        const againFrom = tap.records.length;
        const again = await containerd.ctr(['image', 'pull', '--hosts-dir', containerd.hostsDir, ref]);
        expect(again.code, again.stderr + again.stdout).toBe(0);
        await expectPulledImage(await containerd.inspect(ref), images.ctr);
        expect(sent(againFrom).map((r) => `${r.method} ${r.path}`)).toContain(`HEAD /v2/${images.ctr.repo}/manifests/${images.ctr.tag}`);
        expectCleanRun(sent(againFrom));
        expect(up.proxy.count()).toBe(upstreamBefore);
      } finally {
        up.proxy.faults.clear();
      }

      // The tripwire is live: on a miss at the mirror, containerd goes on to hosts.toml's `server`.
      const missFrom = tap.records.length;
      const missing = await containerd.ctr(['image', 'pull', '--hosts-dir', containerd.hostsDir, `${ACR_HOST}/team/missing:nope`]);
      trace('containerd (miss)', sent(missFrom), missing.stderr);
      expect(missing.code).not.toBe(0);
      expect(tripwire.hits).toContainEqual({ method: 'CONNECT', target: `${ACR_HOST}:443` });
    } finally {
      tripwire.reset();
      await containerd.stop();
    }
  }, 90_000);

  it('docker pulls a Docker Hub name through registry-mirrors, and the mirror by its own name as an insecure registry', async (ctx) => {
    const dockerd = needClient(ctx, await startDockerd({ registryMirror: tap.registryUrl, insecureRegistries: [tapHost], proxyUrl: tripwire.url }));
    try {
      // 1. `docker pull nginx` -> docker.io/library/nginx -> the mirror's /v2/library/nginx/...
      let from = tap.records.length;
      const hub = await dockerd.docker(['pull', 'nginx:latest']);
      expect(hub.code, hub.stderr + hub.stdout).toBe(0);
      await expectPulledImage(await dockerd.inspect('nginx:latest'), images.hub);
      const hubSent = sent(from);
      trace('docker (registry-mirrors)', hubSent);
      expect(hubSent.map(line)).toContain('GET /v2/');
      expect(hubSent.every((r) => r.path === '/v2/' || r.path.startsWith('/v2/library/nginx/'))).toBe(true);
      expect(hubSent.filter((r) => r.query !== '')).toEqual([]);
      expectUpstreamServed(images.hub);
      expectMirrorLogged(hubSent);

      // 2. `docker pull 127.0.0.1:PORT/<name>:<tag>` (insecure-registries).
      from = tap.records.length;
      const directRef = `${tapHost}/${images.dockerDirect.repo}:${images.dockerDirect.tag}`;
      const direct = await dockerd.docker(['pull', directRef]);
      expect(direct.code, direct.stderr + direct.stdout).toBe(0);
      await expectPulledImage(await dockerd.inspect(directRef), images.dockerDirect);
      const directSent = sent(from);
      trace('docker (insecure registry)', directSent);
      expectUpstreamServed(images.dockerDirect);
      expectMirrorLogged(directSent);
      expectCleanRun([...hubSent, ...directSent]);

      // The tripwire is live: on a miss at the mirror, dockerd goes on to Docker Hub.
      from = tap.records.length;
      const missing = await dockerd.docker(['pull', 'team/missing:nope']);
      trace('docker (miss)', sent(from), missing.stderr);
      expect(missing.code).not.toBe(0);
      expect(tripwire.hits.map((h) => h.target)).toContainEqual(expect.stringMatching(/docker\.io:443$/));
    } finally {
      tripwire.reset();
      await dockerd.stop();
    }
  }, 90_000);
});
