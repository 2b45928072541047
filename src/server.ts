import { type ServerType, serve } from '@hono/node-server';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { createMirror, type Mirror } from './app.js';
import type { Config } from './config/load.js';

export interface RunningServer {
  url: string;
  mirror: Mirror;
  /** Stops accepting, lets running responses and fills finish (bounded by shutdown_timeout), closes the cache. */
  shutdown(): Promise<void>;
}

export async function startServer(config: Config, log: Logger): Promise<RunningServer> {
  const mirror = await createMirror(config, { log });
  const servers: ServerType[] = [];
  const url = urlOf(await listen(mirror, config.server.listen, servers), 'http');
  const tls = config.server.tls;
  const tlsUrl = tls
    ? urlOf(await listen(mirror, tls.listen, servers, { createServer: createHttpsServer, serverOptions: { cert: tls.cert, key: tls.key.reveal() } }), 'https')
    : undefined;
  if (!/^(127\.|\[?::1\]?:|localhost:)/.test(config.server.listen) && config.access.allow.every((c) => c.startsWith('127.') || c === '::1/128')) {
    log.warn({ listen: config.server.listen }, 'listening beyond loopback but access.allow admits loopback clients only: add your LAN ranges to access.allow');
  }
  log.info(
    {
      url,
      ...(tlsUrl ? { tlsUrl } : {}),
      config: config.source,
      dataDir: config.storage.dir,
      upstreams: Object.keys(config.upstreams),
      allow: config.access.allow,
      login: config.access.users ? 'htpasswd' : 'none',
    },
    'listening',
  );

  let closing: Promise<void> | null = null;
  return {
    url,
    mirror,
    shutdown() {
      closing ??= (async () => {
        log.info('shutting down: no new connections; waiting for running responses and fills');
        mirror.beginShutdown();
        const closed = Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
        // Keep-alive connections go idle as their responses finish: close them as soon as they do.
        const reaper = setInterval(() => {
          for (const server of servers) if ('closeIdleConnections' in server) server.closeIdleConnections();
        }, 50);
        const deadline = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), config.server.shutdown_timeout).unref());
        const outcome = await Promise.race([Promise.all([closed, mirror.fills.settled()]).then(() => 'drained' as const), deadline]);
        clearInterval(reaper);
        if (outcome === 'timeout') {
          log.warn({ fillsInFlight: mirror.fills.size }, 'shutdown timeout reached; closing remaining connections');
          for (const server of servers) if ('closeAllConnections' in server) server.closeAllConnections();
        }
        await mirror.close();
        log.info('stopped');
      })();
      return closing;
    },
  };
}

async function listen(
  mirror: Mirror,
  address: string,
  servers: ServerType[],
  https?: { createServer: typeof createHttpsServer; serverOptions: { cert: string; key: string } },
): Promise<AddressInfo> {
  const { host, port } = splitListen(address);
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: mirror.app.fetch, hostname: host, port, ...(https ?? {}) }, () => resolve(s));
    s.once('error', reject);
  });
  servers.push(server);
  return server.address() as AddressInfo;
}

function urlOf(address: AddressInfo, scheme: 'http' | 'https'): string {
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `${scheme}://${host}:${address.port}`;
}

function splitListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(listen.slice(i + 1)) };
}
