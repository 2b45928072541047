// Real container clients pulling through the mirror: dockerd + docker CLI, containerd + ctr, podman.
// Each runs as root from its own temp dir (never /var/lib/docker, /run/containerd, /var/lib/containers...),
// listens on unix sockets only, and sends anything not meant for 127.0.0.1 to a tripwire proxy that answers 502
// and counts, so a client falling back to Docker Hub or to the real ACR host never leaves the machine.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { expect, type TestContext } from 'vitest';
import type { BuiltImage, ImageManifest } from './images.js';
import { freePort } from './ports.js';
import { run, runOk, startDaemon, waitReady, type Daemon, type RunResult } from './proc.js';

export type { RunResult } from './proc.js';

/** Fixed PATH for every client: the Debian packages' binaries, never /usr/local/bin (which may hold another docker). */
const PATH = '/usr/sbin:/usr/bin:/sbin:/bin';
const DOCKER_CLI = '/usr/bin/docker';
const DOCKERD = '/usr/sbin/dockerd';
const CONTAINERD = '/usr/bin/containerd';
const CTR = '/usr/bin/ctr';
const PODMAN = '/usr/bin/podman';
const UNSHARE = '/usr/bin/unshare';

/** Debian packages the clients come from (CI installs them). */
export const CLIENT_PACKAGES = ['docker.io', 'containerd', 'podman'] as const;

/** A client that cannot run on this machine, and why: tests skip with this reason (or fail under ACR_MIRROR_REQUIRE_CLIENTS=1). */
export interface Unavailable {
  unavailable: string;
}

export function isUnavailable<T extends object>(x: T | Unavailable): x is Unavailable {
  return 'unavailable' in x;
}

/**
 * The client, or skip the test with the reason shown (never a silent pass).
 * ACR_MIRROR_REQUIRE_CLIENTS=1 (for CI, where the packages are installed) turns the skip into a failure.
 */
export function needClient<T extends object>(ctx: TestContext, client: T | Unavailable): T {
  if (!isUnavailable(client)) return client;
  if (process.env.ACR_MIRROR_REQUIRE_CLIENTS === '1') throw new Error(client.unavailable);
  return ctx.skip(client.unavailable);
}

// ---------------------------------------------------------------------------------------------------------------
// Tripwire: the HTTP(S)_PROXY of every client and daemon.

export interface TripwireHit {
  method: string;
  /** Request target: `host:443` for CONNECT, an absolute URL for plain-HTTP proxying. */
  target: string;
}

export interface Tripwire {
  /** http://127.0.0.1:PORT, for HTTP_PROXY / HTTPS_PROXY. */
  url: string;
  /** TCP connections accepted so far. */
  readonly connections: number;
  hits: TripwireHit[];
  /** Forgets the hits and the connection count. */
  reset(): void;
  stop(): Promise<void>;
}

/** A proxy that forwards nothing: every request (CONNECT or plain) gets 502 and is recorded. */
export async function startTripwire(): Promise<Tripwire> {
  const hits: TripwireHit[] = [];
  let connections = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    hits.push({ method: req.method ?? '?', target: req.url ?? '' });
    res.writeHead(502, { 'content-type': 'text/plain', connection: 'close' });
    res.end('tripwire: this test machine has no way out\n');
  });
  server.on('connection', (socket: Socket) => {
    connections++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('connect', (req, socket: Socket) => {
    hits.push({ method: 'CONNECT', target: req.url ?? '' });
    socket.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get connections() {
      return connections;
    },
    hits,
    reset() {
      hits.length = 0;
      connections = 0;
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function proxyEnv(proxyUrl: string): Record<string, string> {
  return {
    HTTP_PROXY: proxyUrl,
    HTTPS_PROXY: proxyUrl,
    http_proxy: proxyUrl,
    https_proxy: proxyUrl,
    NO_PROXY: '127.0.0.1,localhost',
    no_proxy: '127.0.0.1,localhost',
  };
}

// ---------------------------------------------------------------------------------------------------------------
// What a client ended up with, to compare with the BuiltImage.

export interface PulledImage {
  /** Digest of the top-level manifest the client resolved the tag to (the index/list for multi-platform images). */
  manifestDigest: string;
  /** Image ID = digest of the config blob of the platform image that was pulled. */
  configDigest: string;
  /** Compressed layer digests (as the client downloaded and verified them), in order. */
  layerDigests: string[];
  /** sha256 of each uncompressed layer the client stored, in order (docker save / podman save / ctr content). */
  layerDiffIds: string[];
  /** Exact bytes of manifests the client kept, by digest (ctr, podman; docker keeps none). */
  manifests: Map<string, Buffer>;
  /** Exact bytes of blobs the client kept, by digest (ctr keeps every blob; docker and podman only the config). */
  blobs: Map<string, Buffer>;
}

/** linux/amd64 image of a BuiltImage (the one every client here pulls). */
export function amd64(image: BuiltImage): ImageManifest {
  const m = image.manifests.find((x) => x.platform.architecture === 'amd64');
  if (!m) throw new Error(`${image.repo}:${image.tag} has no linux/amd64 image`);
  return m;
}

/**
 * Asserts the client holds exactly the image: top-level manifest digest, config digest, every compressed layer digest
 * and every diff ID (from the config's rootfs), plus every byte the client kept.
 */
export async function expectPulledImage(pulled: PulledImage, image: BuiltImage): Promise<void> {
  const platform = amd64(image);
  const configBytes = await readFile(platform.config.path);
  const diffIds = (JSON.parse(configBytes.toString()) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids;
  expect(pulled.manifestDigest, 'manifest digest').toBe(image.digest);
  expect(pulled.configDigest, 'config digest (image ID)').toBe(platform.config.digest);
  expect(pulled.layerDigests, 'compressed layer digests').toEqual(platform.layers.map((l) => l.digest));
  expect(pulled.layerDiffIds, 'uncompressed layer digests').toEqual(diffIds);
  const expected = new Map<string, Buffer>([[image.digest, image.manifest], ...image.manifests.map((m) => [m.digest, m.bytes] as const)]);
  for (const [digest, bytes] of pulled.manifests) {
    expect(expected.get(digest)?.equals(bytes), `manifest ${digest} bytes`).toBe(true);
  }
  for (const [digest, bytes] of pulled.blobs) {
    const blob = image.blobs.find((b) => b.digest === digest);
    expect(blob, `blob ${digest} belongs to the image`).toBeDefined();
    expect(bytes.equals(await readFile(blob!.path)), `blob ${digest} bytes`).toBe(true);
    expect(sha256(bytes)).toBe(digest);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// dockerd + docker CLI

export interface DockerdOptions {
  /** http://127.0.0.1:PORT: Docker Hub names go here first. */
  registryMirror: string;
  /** host:port entries allowed over plain HTTP. */
  insecureRegistries?: string[];
  /** HTTP(S)_PROXY for the daemon and CLI; default a closed loopback port. */
  proxyUrl?: string;
  startTimeoutMs?: number;
}

export interface Dockerd {
  /** Runs /usr/bin/docker (the docker.io package's CLI) against this daemon. */
  docker(args: readonly string[], opts?: { timeoutMs?: number }): Promise<RunResult>;
  /** unix:///.../docker.sock */
  host: string;
  dir: string;
  dataRoot: string;
  logPath: string;
  logs(): string;
  /** Digests, image ID, layer digests (from dockerd's v2 metadata) and diff IDs (from `docker save`) of `ref`. */
  inspect(ref: string): Promise<PulledImage>;
  stop(): Promise<void>;
}

export async function startDockerd(opts: DockerdOptions): Promise<Dockerd | Unavailable> {
  for (const bin of [DOCKERD, DOCKER_CLI, CONTAINERD]) {
    if (!existsSync(bin)) return { unavailable: `${bin} is not installed (apt-get install docker.io)` };
  }
  // Short base: unix socket paths must stay under 108 bytes (containerd's sockets live under exec-root).
  const dir = await mkdtemp(join(tmpdir(), 'acr-dockerd-'));
  const dataRoot = join(dir, 'data');
  const execRoot = join(dir, 'exec');
  const logPath = join(dir, 'dockerd.log');
  const host = `unix://${join(dir, 'docker.sock')}`;
  const cliConfig = join(dir, 'cli');
  const home = join(dir, 'home');
  await Promise.all([dataRoot, execRoot, cliConfig, home].map((d) => mkdir(d, { recursive: true })));
  const daemonJson = join(dir, 'daemon.json');
  // A config file of our own, so /etc/docker/daemon.json never applies; the ID key would otherwise go to /etc/docker.
  await writeFile(daemonJson, JSON.stringify({ 'deprecated-key-path': join(dir, 'key.json') }));
  const proxy = proxyEnv(opts.proxyUrl ?? (await closedProxy()));
  // Every environment here is built from scratch: no AWS_CA_BUNDLE, no inherited proxy or DOCKER_* variables.
  const env = { PATH, HOME: home, TMPDIR: dir, DOCKER_CONFIG: cliConfig, ...proxy };
  const args = [
    '--config-file', daemonJson,
    '--storage-driver=vfs',
    '--iptables=false', '--ip6tables=false', '--bridge=none',
    '--data-root', dataRoot,
    '--exec-root', execRoot,
    '--pidfile', join(dir, 'docker.pid'),
    '--host', host,
    '--registry-mirror', opts.registryMirror,
    ...(opts.insecureRegistries ?? []).flatMap((r) => ['--insecure-registry', r]),
  ];
  const daemon = startDaemon(DOCKERD, args, env, logPath);
  const docker: Dockerd['docker'] = (cliArgs, o = {}) =>
    run(DOCKER_CLI, ['--host', host, ...cliArgs], { env, timeoutMs: o.timeoutMs ?? 120_000 });
  const stop = async (): Promise<void> => {
    await stopGracefully(daemon, 10_000);
    // dockerd normally stops the containerd it started; after a SIGKILL it may not have.
    await killIfOurs(join(execRoot, 'containerd', 'containerd.pid'), dir);
    await removeTree(dir);
  };
  try {
    await waitReady('dockerd', daemon, logPath, async () => (await docker(['info', '--format', '{{.ID}}'], { timeoutMs: 5000 })).code === 0, opts.startTimeoutMs ?? 30_000);
  } catch (err) {
    await stop();
    const message = (err as Error).message;
    // A bad flag is the caller's mistake, not the machine's: fail rather than skip.
    if (/invalid argument|unknown flag|invalid mirror/.test(message)) throw err;
    return { unavailable: `dockerd cannot run here: ${message}` };
  }
  return {
    docker,
    host,
    dir,
    dataRoot,
    logPath,
    logs: () => readText(logPath),
    inspect: (ref) => inspectDocker(docker, dataRoot, dir, ref),
    stop,
  };
}

interface DockerInspect {
  Id: string;
  RepoDigests: string[];
  RootFS: { Layers: string[] };
}

async function inspectDocker(docker: Dockerd['docker'], dataRoot: string, dir: string, ref: string): Promise<PulledImage> {
  const r = await docker(['image', 'inspect', ref]);
  if (r.code !== 0) throw new Error(`docker image inspect ${ref}: ${r.stderr}`);
  const [info] = JSON.parse(r.stdout) as DockerInspect[];
  if (!info) throw new Error(`docker image inspect ${ref}: no image`);
  // RepoDigests: ["<repo>@sha256:..."]; a pull through the mirror records exactly one.
  const digests = [...new Set(info.RepoDigests.map((d) => d.slice(d.indexOf('@') + 1)))];
  if (digests.length !== 1) throw new Error(`docker image ${ref} has RepoDigests ${JSON.stringify(info.RepoDigests)}`);
  // dockerd remembers which compressed blob each layer came from: image/vfs/distribution/v2metadata-by-diffid.
  const layerDigests = await Promise.all(
    info.RootFS.Layers.map(async (diffId) => {
      const path = join(dataRoot, 'image', 'vfs', 'distribution', 'v2metadata-by-diffid', 'sha256', hex(diffId));
      const meta = JSON.parse(await readFile(path, 'utf8')) as Array<{ Digest: string }>;
      const blobDigests = [...new Set(meta.map((m) => m.Digest))];
      if (blobDigests.length !== 1) throw new Error(`layer ${diffId} came from ${JSON.stringify(meta)}`);
      return blobDigests[0]!;
    }),
  );
  const saved = await savedArchive(dir, 'docker', (tar) => docker(['save', '-o', tar, ref]));
  expectEqualLists(saved.diffIds, info.RootFS.Layers, `docker save ${ref} layers vs RootFS`);
  return {
    manifestDigest: digests[0]!,
    configDigest: info.Id,
    layerDigests,
    layerDiffIds: saved.diffIds,
    manifests: new Map(),
    blobs: new Map([[sha256(saved.config), saved.config]]),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// containerd + ctr

export interface HostsEntry {
  /** Registry host as clients name it, e.g. registry.cn-hangzhou.aliyuncs.com. */
  registry: string;
  /** The mirror, e.g. http://127.0.0.1:PORT (with a path when overridePath). */
  mirror: string;
  /** `server =` (the registry's own endpoint, used when the mirror fails); default https://<registry>. */
  server?: string;
  overridePath?: boolean;
  capabilities?: string[];
}

export interface Containerd {
  /** `ctr --address <sock> --namespace test ...`; unpacks with the native snapshotter. */
  ctr(args: readonly string[], opts?: { timeoutMs?: number }): Promise<RunResult>;
  /** Directory for `ctr image pull --hosts-dir`. */
  hostsDir: string;
  /** Writes <hostsDir>/<registry>/hosts.toml; returns its text. */
  writeHosts(entry: HostsEntry): Promise<string>;
  /** Exact bytes of a blob or manifest from containerd's content store (undefined when absent). */
  content(digest: string): Promise<Buffer | undefined>;
  /** What `ref` resolved to, with the manifest(s), config and layers from the content store. */
  inspect(ref: string): Promise<PulledImage>;
  address: string;
  dir: string;
  logPath: string;
  logs(): string;
  stop(): Promise<void>;
}

export async function startContainerd(opts: { proxyUrl?: string; startTimeoutMs?: number } = {}): Promise<Containerd | Unavailable> {
  for (const bin of [CONTAINERD, CTR]) {
    if (!existsSync(bin)) return { unavailable: `${bin} is not installed (apt-get install containerd)` };
  }
  const dir = await mkdtemp(join(tmpdir(), 'acr-containerd-'));
  const address = join(dir, 'containerd.sock');
  const hostsDir = join(dir, 'hosts');
  const logPath = join(dir, 'containerd.log');
  await Promise.all(['root', 'state', 'tmp', 'opt', 'hosts', 'home'].map((d) => mkdir(join(dir, d), { recursive: true })));
  // TOML basic strings: JSON.stringify quotes paths safely.
  const q = JSON.stringify;
  const config = `version = 2
root = ${q(join(dir, 'root'))}
state = ${q(join(dir, 'state'))}
temp = ${q(join(dir, 'tmp'))}
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs",
]
[grpc]
  address = ${q(address)}
  tcp_address = ""
[ttrpc]
  address = ${q(`${address}.ttrpc`)}
[debug]
  address = ""
  level = "info"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = ${q(join(dir, 'opt'))}
`;
  const configPath = join(dir, 'config.toml');
  await writeFile(configPath, config);
  const env = { PATH, HOME: join(dir, 'home'), TMPDIR: join(dir, 'tmp'), ...proxyEnv(opts.proxyUrl ?? (await closedProxy())) };
  const daemon = startDaemon(CONTAINERD, ['--config', configPath], env, logPath);
  const ctrEnv = { ...env, CONTAINERD_SNAPSHOTTER: 'native' };
  const ctr: Containerd['ctr'] = (args, o = {}) =>
    run(CTR, ['--address', address, '--namespace', 'test', ...args], { env: ctrEnv, timeoutMs: o.timeoutMs ?? 120_000 });
  const stop = async (): Promise<void> => {
    await stopGracefully(daemon, 5000);
    await removeTree(dir);
  };
  try {
    await waitReady('containerd', daemon, logPath, async () => (await ctr(['version'], { timeoutMs: 5000 })).code === 0, opts.startTimeoutMs ?? 20_000);
  } catch (err) {
    await stop();
    return { unavailable: `containerd cannot run here: ${(err as Error).message}` };
  }
  const content = async (digest: string): Promise<Buffer | undefined> => {
    const r = await runBytes(CTR, ['--address', address, '--namespace', 'test', 'content', 'get', digest], ctrEnv);
    return r.code === 0 ? r.stdout : undefined;
  };
  return {
    ctr,
    hostsDir,
    async writeHosts(entry) {
      const text = hostsToml(entry);
      await mkdir(join(hostsDir, entry.registry), { recursive: true });
      await writeFile(join(hostsDir, entry.registry, 'hosts.toml'), text);
      return text;
    },
    content,
    inspect: (ref) => inspectContainerd(ctr, content, ref),
    address,
    dir,
    logPath,
    logs: () => readText(logPath),
    stop,
  };
}

/** containerd's hosts.toml: the mirror first (pull + resolve), the registry's own server as the fallback. */
export function hostsToml(entry: HostsEntry): string {
  const q = JSON.stringify;
  const caps = entry.capabilities ?? ['pull', 'resolve'];
  return [
    `server = ${q(entry.server ?? `https://${entry.registry}`)}`,
    '',
    `[host.${q(entry.mirror)}]`,
    `  capabilities = [${caps.map((c) => q(c)).join(', ')}]`,
    ...(entry.overridePath ? ['  override_path = true'] : []),
    '',
  ].join('\n');
}

interface OciDescriptor {
  mediaType: string;
  digest: string;
  platform?: { os: string; architecture: string };
}

async function inspectContainerd(
  ctr: Containerd['ctr'],
  content: (digest: string) => Promise<Buffer | undefined>,
  ref: string,
): Promise<PulledImage> {
  const ls = await ctr(['image', 'ls']);
  if (ls.code !== 0) throw new Error(`ctr image ls: ${ls.stderr}`);
  // REF TYPE DIGEST SIZE PLATFORMS LABELS
  const row = ls.stdout.split('\n').map((l) => l.trim().split(/\s+/)).find((cols) => cols[0] === ref);
  const top = row?.[2];
  if (!top?.startsWith('sha256:')) throw new Error(`ctr image ls has no ${ref}:\n${ls.stdout}`);
  const manifests = new Map<string, Buffer>();
  const blobs = new Map<string, Buffer>();
  const need = async (digest: string): Promise<Buffer> => {
    const bytes = await content(digest);
    if (!bytes) throw new Error(`content ${digest} of ${ref} is not in containerd's store`);
    return bytes;
  };
  let manifestDigest = top;
  let manifest = JSON.parse((await need(top)).toString()) as { manifests?: OciDescriptor[]; config?: OciDescriptor; layers?: OciDescriptor[] };
  manifests.set(top, await need(top));
  if (manifest.manifests) {
    const platform = manifest.manifests.find((m) => m.platform?.os === 'linux' && m.platform.architecture === 'amd64');
    if (!platform) throw new Error(`${ref}: no linux/amd64 in the index`);
    manifestDigest = platform.digest;
    const bytes = await need(manifestDigest);
    manifests.set(manifestDigest, bytes);
    manifest = JSON.parse(bytes.toString()) as typeof manifest;
  }
  if (!manifest.config || !manifest.layers) throw new Error(`${ref}: ${manifestDigest} is not an image manifest`);
  blobs.set(manifest.config.digest, await need(manifest.config.digest));
  const layerDiffIds: string[] = [];
  for (const layer of manifest.layers) {
    const bytes = await need(layer.digest);
    blobs.set(layer.digest, bytes);
    layerDiffIds.push(sha256(gunzipSync(bytes)));
  }
  return {
    manifestDigest: top,
    configDigest: manifest.config.digest,
    layerDigests: manifest.layers.map((l) => l.digest),
    layerDiffIds,
    manifests,
    blobs,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// podman

export interface RegistryEntry {
  /** `[[registry]] location`, e.g. registry.cn-hangzhou.aliyuncs.com or 127.0.0.1:5000. */
  location: string;
  insecure?: boolean;
  /** `[[registry.mirror]]` entries, tried in order before location. */
  mirrors?: Array<{ location: string; insecure?: boolean }>;
}

export interface PodmanOptions {
  registries?: RegistryEntry[];
  proxyUrl?: string;
}

export interface Podman {
  /** `podman --root --runroot --storage-driver vfs ...` with this instance's configuration files. */
  podman(args: readonly string[], opts?: { timeoutMs?: number }): Promise<RunResult>;
  /** `podman pull` with the insecureAcceptAnything policy; extra flags (e.g. --tls-verify=false) before the ref. */
  pull(ref: string, flags?: readonly string[]): Promise<RunResult>;
  /** Digest, image ID, layers (compressed digests from c/storage's layer records, diff IDs from `podman save`). */
  inspect(ref: string): Promise<PulledImage>;
  registriesConf: string;
  dir: string;
  stop(): Promise<void>;
}

export async function createPodman(opts: PodmanOptions = {}): Promise<Podman | Unavailable> {
  if (!existsSync(PODMAN)) return { unavailable: `${PODMAN} is not installed (apt-get install podman)` };
  if (!existsSync(UNSHARE)) return { unavailable: `${UNSHARE} is not installed (util-linux)` };
  const dir = await mkdtemp(join(tmpdir(), 'acr-podman-'));
  const p = (...parts: string[]) => join(dir, ...parts);
  await Promise.all(['root', 'runroot', 'tmp', 'libpod-tmp', 'home', 'xdg-runtime', 'cni', 'volumes'].map((d) => mkdir(p(d), { recursive: true })));
  const q = JSON.stringify;
  const registriesConf = p('registries.conf');
  const registries = [
    'unqualified-search-registries = []',
    ...(opts.registries ?? []).flatMap((r) => [
      '',
      '[[registry]]',
      `location = ${q(r.location)}`,
      `insecure = ${r.insecure ?? false}`,
      ...(r.mirrors ?? []).flatMap((m) => ['', '[[registry.mirror]]', `location = ${q(m.location)}`, `insecure = ${m.insecure ?? false}`]),
    ]),
    '',
  ].join('\n');
  const policy = p('policy.json');
  await Promise.all([
    writeFile(registriesConf, registries),
    writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] })),
    writeFile(p('auth.json'), '{"auths":{}}\n'),
    writeFile(p('storage.conf'), `[storage]\ndriver = "vfs"\ngraphroot = ${q(p('root'))}\nrunroot = ${q(p('runroot'))}\n`),
    writeFile(
      p('containers.conf'),
      [
        '[engine]',
        'cgroup_manager = "cgroupfs"',
        'events_logger = "none"',
        `tmp_dir = ${q(p('libpod-tmp'))}`,
        `image_copy_tmp_dir = ${q(p('tmp'))}`,
        `volume_path = ${q(p('volumes'))}`,
        '[network]',
        'network_backend = "cni"',
        `network_config_dir = ${q(p('cni'))}`,
        '',
      ].join('\n'),
    ),
  ]);
  const env = {
    PATH,
    HOME: p('home'),
    TMPDIR: p('tmp'),
    XDG_RUNTIME_DIR: p('xdg-runtime'),
    XDG_CONFIG_HOME: p('home', '.config'),
    XDG_DATA_HOME: p('home', '.local', 'share'),
    CONTAINERS_CONF: p('containers.conf'),
    CONTAINERS_STORAGE_CONF: p('storage.conf'),
    CONTAINERS_REGISTRIES_CONF: registriesConf,
    REGISTRY_AUTH_FILE: p('auth.json'),
    ...proxyEnv(opts.proxyUrl ?? (await closedProxy())),
  };
  const global = ['--root', p('root'), '--runroot', p('runroot'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'none', '--tmpdir', p('libpod-tmp')];
  // As root, containers/image keeps its blob-info cache in /var/lib/containers/cache whatever the flags say: run
  // each podman in a private mount namespace where /var/lib/containers is this instance's own directory.
  const isolate = [
    'state=$1; shift',
    'if [ -d /var/lib/containers ]; then mount --bind "$state" /var/lib/containers; else mount -t tmpfs tmpfs /var/lib; fi || exit 99',
    'exec "$@"',
  ].join('\n');
  await mkdir(p('var-lib-containers'));
  const podman: Podman['podman'] = (args, o = {}) =>
    run(UNSHARE, ['--mount', '--propagation', 'private', '/bin/sh', '-c', isolate, 'sh', p('var-lib-containers'), PODMAN, ...global, ...args], {
      env,
      timeoutMs: o.timeoutMs ?? 120_000,
    });
  const version = await podman(['version', '--format', '{{.Client.Version}}'], { timeoutMs: 30_000 });
  if (version.code !== 0) {
    await removeTree(dir);
    const why = version.code === 99 ? 'cannot give it a private /var/lib/containers (unshare --mount needs root)' : 'podman version failed';
    return { unavailable: `podman cannot run here: ${why}: ${version.stderr.trim() || version.stdout.trim()}` };
  }
  return {
    podman,
    pull: (ref, flags = []) => podman(['pull', '--quiet', '--signature-policy', policy, ...flags, ref]),
    inspect: (ref) => inspectPodman(podman, p('root'), dir, ref),
    registriesConf,
    dir,
    stop: () => removeTree(dir),
  };
}

interface PodmanInspect {
  Id: string;
  Digest: string;
  RootFS: { Layers: string[] };
}

interface StorageLayer {
  id: string;
  parent?: string;
  'compressed-diff-digest'?: string;
  'diff-digest'?: string;
}

async function inspectPodman(podman: Podman['podman'], root: string, dir: string, ref: string): Promise<PulledImage> {
  const r = await podman(['image', 'inspect', ref]);
  if (r.code !== 0) throw new Error(`podman image inspect ${ref}: ${r.stderr}`);
  const [info] = JSON.parse(r.stdout) as PodmanInspect[];
  if (!info) throw new Error(`podman image inspect ${ref}: no image`);
  // c/storage records each layer's compressed digest as pulled (vfs-layers/layers.json).
  const layers = JSON.parse(await readFile(join(root, 'vfs-layers', 'layers.json'), 'utf8')) as StorageLayer[];
  const layerDigests = info.RootFS.Layers.map((diffId) => {
    const found = [...new Set(layers.filter((l) => l['diff-digest'] === diffId).map((l) => l['compressed-diff-digest']))];
    if (found.length !== 1 || !found[0]) throw new Error(`layer ${diffId}: compressed digests ${JSON.stringify(found)}`);
    return found[0];
  });
  // The image's big-data items include the exact manifest bytes, keyed "manifest-<digest>" (file names may be
  // "=" + base64 of the key).
  const manifests = new Map<string, Buffer>();
  const imageDir = join(root, 'vfs-images', info.Id.replace(/^sha256:/, ''));
  for (const name of await readdir(imageDir)) {
    const key = name.startsWith('=') ? Buffer.from(name.slice(1), 'base64').toString() : name;
    if (key.startsWith('manifest-sha256:')) manifests.set(key.slice('manifest-'.length), await readFile(join(imageDir, name)));
  }
  const saved = await savedArchive(dir, 'podman', (tar) => podman(['save', '--format', 'docker-archive', '-o', tar, ref]));
  expectEqualLists(saved.diffIds, info.RootFS.Layers, `podman save ${ref} layers vs RootFS`);
  return {
    manifestDigest: info.Digest,
    configDigest: `sha256:${info.Id.replace(/^sha256:/, '')}`,
    layerDigests,
    layerDiffIds: saved.diffIds,
    manifests,
    blobs: new Map([[sha256(saved.config), saved.config]]),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// shared helpers

/** Runs `save` into a docker-archive tar, unpacks it and hashes the config and each layer tar in order. */
async function savedArchive(
  dir: string,
  label: string,
  save: (tarPath: string) => Promise<RunResult>,
): Promise<{ config: Buffer; diffIds: string[] }> {
  const work = await mkdtemp(join(dir, `${label}-save-`));
  try {
    const tar = join(work, 'image.tar');
    const r = await save(tar);
    if (r.code !== 0) throw new Error(`${label} save: ${r.stderr}`);
    const out = join(work, 'x');
    await mkdir(out);
    await runOk('tar', ['-xf', tar, '-C', out]);
    const [entry] = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as Array<{ Config: string; Layers: string[] }>;
    if (!entry) throw new Error(`${label} save: empty manifest.json`);
    const config = await readFile(join(out, entry.Config));
    const diffIds = await Promise.all(entry.Layers.map(async (l) => sha256(await readFile(join(out, l)))));
    return { config, diffIds };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function expectEqualLists(a: string[], b: string[], what: string): void {
  if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error(`${what}: ${JSON.stringify(a)} != ${JSON.stringify(b)}`);
}

/** A loopback port nobody listens on (used when no tripwire is given). */
async function closedProxy(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}`;
}

/** SIGTERM, then SIGKILL after the grace period. */
async function stopGracefully(daemon: Daemon, graceMs: number): Promise<void> {
  if (daemon.exited) return;
  try {
    process.kill(daemon.pid, 'SIGTERM');
  } catch {
    // already gone
  }
  const deadline = Date.now() + graceMs;
  while (!daemon.exited && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await daemon.stop();
}

/** SIGKILLs the process named by pidFile if it is still alive and its command line mentions ownDir. */
async function killIfOurs(pidFile: string, ownDir: string): Promise<void> {
  let pid: number;
  try {
    pid = Number((await readFile(pidFile, 'utf8')).trim());
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 1) return;
  const cmdline = (() => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      return '';
    }
  })();
  if (!cmdline.includes(ownDir)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  const deadline = Date.now() + 5000;
  while (existsSync(`/proc/${pid}`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

/** Unmounts anything a daemon left mounted under dir (deepest first), then removes it. */
async function removeTree(dir: string): Promise<void> {
  const mounts = readText('/proc/self/mountinfo')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await run('umount', ['-l', m]);
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

/** Runs a command and returns stdout as bytes (for binary content). */
function runBytes(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000, killSignal: 'SIGKILL' });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() }));
  });
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function hex(digest: string): string {
  return digest.replace(/^sha256:/, '');
}
