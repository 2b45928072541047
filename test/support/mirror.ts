import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Context } from 'hono';
import { type Logger, pino } from 'pino';
import { createMirror, type Mirror } from '../../src/app.js';
import { parseConfig } from '../../src/config/load.js';
import type { FakeUpstream } from './fake-upstream.js';

export interface TestMirror {
  mirror: Mirror;
  dir: string;
  sleeps: number[];
  request(path: string, init?: RequestInit): Promise<Response>;
  close(): Promise<void>;
}

/** A mirror wired to a FakeUpstream through its injected fetch, with a clock and sleeps the test controls. */
export async function startTestMirror(
  fake: FakeUpstream,
  opts: {
    now?: () => number;
    config?: Record<string, unknown>;
    /** Keys merged into the upstream; with temporary_credentials the static login is left out. */
    upstream?: Record<string, unknown>;
    env?: Record<string, string>;
    /** The client address of every request, or a function choosing it per request. */
    clientAddress?: string | ((c: Context) => string | undefined);
    /** Reuse this directory (restart tests); it is then left in place by close(). */
    dir?: string;
    log?: Logger;
  } = {},
): Promise<TestMirror> {
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'acr-mirror-unit-')));
  const config = parseConfig(
    {
      storage: { dir: 'data' },
      upstreams: {
        acr: {
          url: 'https://registry.test',
          // The fake's token service is on another host than its registry.
          token_realms: ['auth.test'],
          ...(opts.upstream?.temporary_credentials ? {} : { username: fake.user, password_env: 'TEST_ACR_PASSWORD' }),
          ...opts.upstream,
        },
      },
      routes: [{ prefix: '', upstream: 'acr' }],
      ...opts.config,
    },
    { env: { TEST_ACR_PASSWORD: fake.password, ...opts.env }, baseDir: dir, source: 'test' },
  );
  const sleeps: number[] = [];
  const mirror = await createMirror(config, {
    log: opts.log ?? pino({ level: 'silent' }),
    fetch: fake.fetch,
    ...(opts.now ? { now: opts.now } : {}),
    sleep: async (ms) => void sleeps.push(ms),
    clientAddress: typeof opts.clientAddress === 'function' ? opts.clientAddress : () => (opts.clientAddress as string | undefined) ?? '127.0.0.1',
  });
  return {
    mirror,
    dir,
    sleeps,
    request: async (path, init) => mirror.app.request(`http://mirror.test${path}`, init),
    async close() {
      await mirror.fills.settled();
      await mirror.close();
      if (!opts.dir) await rm(dir, { recursive: true, force: true });
    },
  };
}
