import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Upstream } from '../test/e2e/harness/upstream.js';

const MAIN = resolve(import.meta.dirname, '../dist/main.js');
const START_TIMEOUT_MS = 20_000;
const STOP_GRACE_MS = 15_000;

export interface MirrorOptions {
  /** Working directory: config.toml and mirror.log. Removed by stop() unless keepDir. */
  dir: string;
  /** Cache directory; survives stop() when it is outside dir (restart runs). */
  dataDir: string;
  upstream: Pick<Upstream, 'registryUrl' | 'credentials'>;
  /** Extra node flags, e.g. --cpu-prof. */
  nodeArgs?: readonly string[];
  /** Keys set in [upstreams.acr] and [cache] besides the defaults, e.g. { upstream: { fill_connections: 1 } }. */
  settings?: MirrorSettings;
  /** Extra environment variables (e.g. the OSS access key named by [storage.oss]). */
  env?: Record<string, string>;
}

export interface MirrorSettings {
  upstream?: Record<string, number | boolean | string>;
  cache?: Record<string, number | boolean | string>;
  storage?: Record<string, number | boolean | string>;
  /** A [storage.oss] table (with storage.backend = "oss"). */
  oss?: Record<string, number | boolean | string>;
}

export interface ProcMemory {
  /** Peak resident set size since start (VmHWM), bytes. */
  peakRss: number;
  /** Resident set size now (VmRSS), bytes. */
  rss: number;
}

export interface BenchMirror {
  url: string;
  host: string;
  pid: number;
  dataDir: string;
  /** From spawn to the "listening" log line's own timestamp. */
  startupMs: number;
  memory(): Promise<ProcMemory>;
  /** SIGTERM (graceful: the CPU profile, if any, is written), SIGKILL after a grace period. */
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** `node dist/main.js serve` on a free loopback port, like the e2e harness, but exposing its pid. */
export async function startBenchMirror(opts: MirrorOptions): Promise<BenchMirror> {
  await mkdir(opts.dir, { recursive: true });
  const configPath = join(opts.dir, 'config.toml');
  const logPath = join(opts.dir, 'mirror.log');
  await writeFile(configPath, mirrorToml(opts.dataDir, opts.upstream, opts.settings ?? {}));
  const fd = openSync(logPath, 'a');
  const spawnedAt = Date.now();
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [...(opts.nodeArgs ?? []), MAIN, '--config', configPath, 'serve', '--listen', '127.0.0.1:0'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NO_PROXY: '127.0.0.1,localhost', ACR_PASSWORD: opts.upstream.credentials.password, ...opts.env },
      stdio: ['ignore', fd, fd],
    });
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) throw new Error('cannot start the mirror');
  const pid = child.pid;
  live.add(child);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  void exited.then(() => live.delete(child));

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
    await rm(opts.dir, { recursive: true, force: true });
  };

  try {
    const listening = await waitForListening(logPath, child);
    return {
      url: listening.url,
      host: new URL(listening.url).host,
      pid,
      dataDir: opts.dataDir,
      startupMs: Date.parse(listening.time) - spawnedAt,
      memory: () => readMemory(pid),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

function mirrorToml(dataDir: string, up: MirrorOptions['upstream'], settings: MirrorSettings): string {
  const keys = (values: Record<string, unknown> = {}) => Object.entries(values).map(([k, v]) => `${k} = ${JSON.stringify(v)}\n`).join('');
  return `[storage]
dir = ${JSON.stringify(dataDir)}
${keys(settings.storage)}${settings.oss ? `[storage.oss]\n${keys(settings.oss)}` : ''}[log]
level = "info"
[cache]
${keys(settings.cache)}[upstreams.acr]
url = ${JSON.stringify(up.registryUrl)}
username = ${JSON.stringify(up.credentials.username)}
password_env = "ACR_PASSWORD"
insecure = true
${keys(settings.upstream)}[[routes]]
prefix = ""
upstream = "acr"
`;
}

async function waitForListening(logPath: string, child: ChildProcess): Promise<{ url: string; time: string }> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const log = await readFile(logPath, 'utf8');
    const line = log.split('\n').find((l) => l.includes('"msg":"listening"'));
    if (line) return JSON.parse(line) as { url: string; time: string };
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`mirror exited before listening:\n${log}`);
    if (Date.now() > deadline) throw new Error(`mirror not listening after ${START_TIMEOUT_MS} ms:\n${log}`);
    await sleep(5);
  }
}

async function readMemory(pid: number): Promise<ProcMemory> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!m) throw new Error(`no ${key} in /proc/${pid}/status`);
    return Number(m[1]) * 1024;
  };
  return { peakRss: kib('VmHWM'), rss: kib('VmRSS') };
}
