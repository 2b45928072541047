import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const MAIN = resolve(import.meta.dirname, '../../../dist/main.js');

export interface MirrorProcess {
  url: string;
  /** The HTTPS listener's URL when server.tls_listen is configured. */
  tlsUrl?: string;
  /** host:port, as skopeo and other clients name the registry. */
  host: string;
  dir: string;
  dataDir: string;
  /** Every log line the mirror printed so far (stdout and stderr). */
  logs(): string;
  /** SIGTERM, then SIGKILL after a grace period; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL at once (crash tests). */
  kill(): Promise<void>;
}

export interface MirrorProcessOptions {
  /** config.toml content; `{{data}}` is replaced by the data directory. */
  config: string;
  env?: Record<string, string>;
  /** Reuse a data directory (restart tests). */
  dataDir?: string;
  /** The listener's address, known before start (cluster members); a free loopback port by default. */
  listen?: string;
}

/** Runs the built CLI (`node dist/main.js serve`) as a child process on a free loopback port. */
export async function startMirror(opts: MirrorProcessOptions): Promise<MirrorProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'acr-mirror-e2e-'));
  const dataDir = opts.dataDir ?? join(dir, 'data');
  const configPath = join(dir, 'config.toml');
  await writeFile(configPath, opts.config.replaceAll('{{data}}', dataDir));
  const child = spawn(process.execPath, [MAIN, '--config', configPath, 'serve', '--listen', opts.listen ?? '127.0.0.1:0'], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NO_PROXY: '127.0.0.1,localhost', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const { url, tlsUrl } = await new Promise<{ url: string; tlsUrl?: string }>((resolveUrl, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`mirror did not start in 15 s:\n${output}`));
    }, 15_000);
    const onData = () => {
      for (const line of output.split('\n')) {
        if (!line.includes('"msg":"listening"')) continue;
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolveUrl(JSON.parse(line) as { url: string; tlsUrl?: string });
        return;
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`mirror exited with ${code} before listening:\n${output}`));
    });
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  // The config (and the data, unless the caller owns it) live in dir.
  const cleanup = async () => {
    await rm(dir, { recursive: true, force: true });
  };
  return {
    url,
    ...(tlsUrl ? { tlsUrl } : {}),
    host: new URL(url).host,
    dir,
    dataDir,
    logs: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(timer);
      await cleanup();
      return code;
    },
    async kill() {
      child.kill('SIGKILL');
      await exited;
      await cleanup();
    },
  };
}
