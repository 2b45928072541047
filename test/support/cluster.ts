import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { getRequestListener } from '@hono/node-server';
import { pino } from 'pino';
import type { FakeCall, FakeUpstream } from './fake-upstream.js';
import { startTestMirror, type TestMirror } from './mirror.js';

export const CLUSTER_SECRET = '5c0e9f27b81d4a6e93f0c7d2a4b8e1f6';

type Listener = (req: IncomingMessage, res: ServerResponse) => void;

/** One replica of a test cluster: a TestMirror, also served over HTTP on 127.0.0.1 for the other members. */
export interface Replica {
  url: string;
  m: TestMirror;
  server: Server;
  /** Log lines written by this replica. */
  logs: string[];
  /** Replaces how the server answers (faults); `serve` is the mirror's own listener. */
  setListener(make: (serve: Listener) => Listener): void;
  /** Stops listening and closes every open connection: the replica is gone for the others. */
  stop(): void;
}

/** `count` replicas of one cluster in front of one FakeUpstream, listening on 127.0.0.1 (ports chosen by the OS). */
export async function startCluster(
  fake: FakeUpstream,
  count: number,
  opts: { cluster?: Record<string, unknown>; config?: Record<string, unknown>; env?: Record<string, string>; now?: () => number } = {},
): Promise<Replica[]> {
  const servers = await Promise.all(Array.from({ length: count }, () => listen()));
  const members = servers.map((s) => s.url);
  return Promise.all(
    servers.map(async ({ url, server, route }) => {
      const logs: string[] = [];
      const log = pino({ level: 'info' }, new Writable({ write: (chunk, _e, done) => (logs.push(String(chunk)), done()) }));
      const m = await startTestMirror(fake, {
        config: { cache: { prefetch: false, orphan_fill_grace: '1s' }, ...opts.config, cluster: { self: url, members, secret_env: 'CLUSTER_SECRET', ...opts.cluster } },
        env: { CLUSTER_SECRET, ...opts.env },
        log,
        ...(opts.now ? { now: opts.now } : {}),
      });
      const serve = getRequestListener(m.mirror.app.fetch) as Listener;
      route.listener = serve;
      const stop = () => {
        server.close();
        server.closeAllConnections();
      };
      return { url, m, server, logs, setListener: (make: (serve: Listener) => Listener) => (route.listener = make(serve)), stop };
    }),
  );
}

async function listen(): Promise<{ url: string; server: Server; route: { listener: Listener } }> {
  const route: { listener: Listener } = { listener: (_req, res) => res.writeHead(503).end() };
  const server = createServer((req, res) => route.listener(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, route };
}

export async function stopCluster(replicas: Replica[]): Promise<void> {
  for (const r of replicas) r.stop();
  await Promise.all(replicas.map((r) => r.m.close()));
}

/** Blob bytes the fake's object storage sent (by the Range of each GET), for one digest. */
export function upstreamBlobBytes(fake: FakeUpstream, digest: string, size: number): number {
  return fake.calls.filter((c) => c.host === 'oss.test' && c.method === 'GET' && c.path.startsWith(`/blobs/${digest}`)).reduce((sum, c) => sum + rangeLength(c, size), 0);
}

function rangeLength(call: FakeCall, size: number): number {
  const m = /^bytes=(\d+)-(\d*)$/.exec(call.range ?? '');
  if (!m) return size;
  const end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
  return end - Number(m[1]) + 1;
}
