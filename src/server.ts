import { type ServerType, serve } from '@hono/node-server';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import { AddressList, isLoopback } from './access/address-list.js';
import { createMirror, type Mirror, type MirrorDeps } from './app.js';
import { dataDirProblem, errnoCause } from './config/data-dir.js';
import type { Config } from './config/load.js';

export interface RunningServer {
  url: string;
  mirror: Mirror;
  /** Stops accepting, lets running responses and fills finish (bounded by shutdown_timeout), closes the cache. */
  shutdown(): Promise<void>;
}

/** Why the mirror cannot start, said in one line (the data directory, a listen address): main exits with 2. */
export class StartupError extends Error {
  override name = 'StartupError';
}

export async function startServer(config: Config, log: Logger, deps: Omit<MirrorDeps, 'log'> = {}): Promise<RunningServer> {
  const dirProblem = dataDirProblem(config.storage.dir);
  if (dirProblem) throw new StartupError(dirProblem);
  const mirror = await createMirror(config, { ...deps, log });
  const servers: ServerType[] = [];
  const { url, tlsUrl } = await listenAll(mirror, config, servers).catch(async (err: unknown) => {
    for (const server of servers) server.close();
    await mirror.close();
    throw err;
  });
  for (const [fields, message] of startupWarnings(config)) log.warn(fields, message);
  log.info(
    {
      url,
      ...(tlsUrl ? { tlsUrl } : {}),
      config: config.source,
      dataDir: config.storage.dir,
      upstreams: Object.keys(config.upstreams),
      allow: config.access.allow,
      login: config.access.users ? 'htpasswd' : 'none',
      ...(config.cluster ? { cluster: { self: config.cluster.self, members: config.cluster.members.length } } : {}),
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

/** The plain HTTP listener and, when configured, the HTTPS one; each one opened is added to servers. */
async function listenAll(mirror: Mirror, config: Config, servers: ServerType[]): Promise<{ url: string; tlsUrl?: string }> {
  const listener = listenerOptions(config);
  const url = urlOf(await listen(mirror, config.server.listen, servers, listener), 'http');
  const tls = config.server.tls;
  if (!tls) return { url };
  const https = { ...listener, createServer: createHttpsServer, serverOptions: { ...listener.serverOptions, cert: tls.cert, key: tls.key.reveal() } };
  return { url, tlsUrl: urlOf(await listen(mirror, tls.listen, servers, https), 'https') };
}

interface ListenerOptions {
  serverOptions: { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number; cert?: string; key?: string };
  createServer?: typeof createHttpsServer;
  maxConnections: number;
  /** Whether a socket's remote address may use anything at all (access.allow or admin.allow). */
  admits(address: string | undefined): boolean;
}

/**
 * Node's requestTimeout bounds receiving a request (headers and body), not sending the answer: a multi-GB blob
 * download is not cut by it, a bundle import upload is. headersTimeout bounds slow headers.
 */
function listenerOptions(config: Config): ListenerOptions {
  const { headers_timeout, request_timeout, max_connections } = config.server;
  const access = new AddressList(config.access.allow);
  const admin = new AddressList(config.admin.allow);
  return {
    // Node checks both timeouts on this interval: a quarter of the headers timeout keeps the bound close.
    serverOptions: { headersTimeout: headers_timeout, requestTimeout: request_timeout, connectionsCheckingInterval: Math.min(30_000, headers_timeout / 4) },
    maxConnections: max_connections,
    admits: (address) => access.has(address) || admin.has(address),
  };
}

async function listen(mirror: Mirror, address: string, servers: ServerType[], options: ListenerOptions): Promise<AddressInfo> {
  const { host, port } = splitListen(address);
  const { serverOptions, createServer, maxConnections, admits } = options;
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: mirror.app.fetch, hostname: host, port, serverOptions, ...(createServer ? { createServer } : {}) }, () => resolve(s));
    s.once('error', (err) => reject(new StartupError(`cannot listen on ${address}: ${listenCause(err)}`)));
  });
  server.maxConnections = maxConnections;
  // Before TLS and HTTP parsing: a client nobody admits costs no more than the accept.
  server.on('connection', (socket: Socket) => {
    if (!admits(socket.remoteAddress)) socket.destroy();
  });
  servers.push(server);
  return server.address() as AddressInfo;
}

function listenCause(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'EADDRINUSE':
      return 'address already in use (EADDRINUSE): another process listens there';
    case 'EADDRNOTAVAIL':
      return 'no such address on this host (EADDRNOTAVAIL)';
    case 'EACCES':
      return 'permission denied (EACCES): ports below 1024 need root or CAP_NET_BIND_SERVICE';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `host name not found (${err.code})`;
    default:
      return errnoCause(err);
  }
}

const isLoopbackListen = (listen: string) => /^(127\.|\[?::1\]?:|localhost:)/.test(listen);
/** Whether a CIDR admits only loopback addresses. */
function loopbackOnly(cidr: string): boolean {
  const [address, bits] = cidr.split('/') as [string, string | undefined];
  const v6 = address.includes(':');
  return isLoopback(address) && Number(bits ?? (v6 ? 128 : 32)) >= (v6 ? 128 : 8);
}

/** What the configuration exposes that an operator should know about at start-up. */
export function startupWarnings(config: Config): Array<[Record<string, unknown>, string]> {
  const warnings: Array<[Record<string, unknown>, string]> = [];
  const listen = config.server.listen;
  if (isLoopbackListen(listen)) return warnings;
  if (config.access.allow.every(loopbackOnly)) {
    warnings.push([{ listen }, 'listening beyond loopback but access.allow admits loopback clients only: add your LAN ranges to access.allow']);
  }
  if (config.admin.token && !config.admin.allow.every(loopbackOnly)) {
    warnings.push([
      { listen, adminAllow: config.admin.allow },
      'the admin API is served over plain HTTP beyond loopback: its token and session cookie cross the network in clear (use server.tls_listen, or narrow admin.allow to loopback)',
    ]);
  }
  return warnings;
}

function urlOf(address: AddressInfo, scheme: 'http' | 'https'): string {
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `${scheme}://${host}:${address.port}`;
}

function splitListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(listen.slice(i + 1)) };
}
