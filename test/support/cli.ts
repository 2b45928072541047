import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import { parseConfig } from '../../src/config/load.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { run, type RunResult } from '../e2e/harness/proc.js';
import { ADMIN_ENV } from './admin.js';
import type { FakeUpstream } from './fake-upstream.js';

const MAIN = resolve(import.meta.dirname, '../../dist/main.js');

export interface ServedMirror {
  server: RunningServer;
  dir: string;
  /** Runs the built acr-mirror (dist/main.js, so `npm run build` first) with the admin token, pipes for stdout and stderr. */
  cli(args: string[], env?: Record<string, string>): Promise<RunResult>;
  close(): Promise<void>;
}

/** A mirror on 127.0.0.1 in this process, in front of the fake upstream, for the command line to talk to. */
export async function serveMirror(fake: FakeUpstream, config: Record<string, unknown> = {}): Promise<ServedMirror> {
  const dir = await mkdtemp(join(tmpdir(), 'acr-mirror-cli-'));
  const parsed = parseConfig(
    {
      server: { listen: '127.0.0.1:0', shutdown_timeout: '1s' },
      storage: { dir: 'data' },
      cache: { prefetch: false },
      upstreams: { acr: { url: 'https://registry.test', token_realms: ['auth.test'], username: fake.user, password_env: 'TEST_ACR_PASSWORD' } },
      routes: [{ prefix: '', upstream: 'acr' }],
      ...config,
    },
    { env: { TEST_ACR_PASSWORD: fake.password, ...ADMIN_ENV }, baseDir: dir, source: 'test' },
  );
  const server = await startServer(parsed, pino({ level: 'silent' }), { fetch: fake.fetch });
  return {
    server,
    dir,
    cli: (args, env = {}) =>
      run(process.execPath, [MAIN, ...args], {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ACR_MIRROR_URL: server.url, ...ADMIN_ENV, ...env },
        timeoutMs: 60_000,
      }),
    async close() {
      await server.shutdown();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
