import { type ServerType, serve } from '@hono/node-server';
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
  const { host, port } = splitListen(config.server.listen);
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: mirror.app.fetch, hostname: host, port }, () => resolve(s));
    s.once('error', reject);
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${shownHost}:${address.port}`;
  log.info({ url, config: config.source, dataDir: config.storage.dir, upstreams: Object.keys(config.upstreams) }, 'listening');

  let closing: Promise<void> | null = null;
  return {
    url,
    mirror,
    shutdown() {
      closing ??= (async () => {
        log.info('shutting down: no new connections; waiting for running responses and fills');
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        if ('closeIdleConnections' in server) server.closeIdleConnections();
        const deadline = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), config.server.shutdown_timeout).unref());
        const outcome = await Promise.race([Promise.all([closed, mirror.fills.settled()]).then(() => 'drained' as const), deadline]);
        if (outcome === 'timeout') {
          log.warn({ fillsInFlight: mirror.fills.size }, 'shutdown timeout reached; closing remaining connections');
          if ('closeAllConnections' in server) server.closeAllConnections();
        }
        await mirror.close();
        log.info('stopped');
      })();
      return closing;
    },
  };
}

function splitListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(listen.slice(i + 1)) };
}
