import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { Agent, type Dispatcher, EnvHttpProxyAgent, ProxyAgent, fetch as undiciFetch } from 'undici';
import { HostPins } from './host-pins.js';

export interface FetchInit {
  method: 'GET' | 'HEAD';
  headers: Record<string, string>;
  signal?: AbortSignal;
}

/** The only way the mirror talks HTTP to the outside. Redirects are never followed here (see RegistryClient). */
export type Fetch = (url: string, init: FetchInit) => Promise<Response>;

export interface TransportOptions {
  connectTimeoutMs: number;
  /** Time to wait for response headers. */
  responseTimeoutMs: number;
  /** Longest silence between two body chunks. */
  idleTimeoutMs: number;
  /** Host name -> IP, wildcards allowed; TLS still verifies the name. */
  hosts?: Record<string, string>;
  /** PEM file of extra CAs trusted for this upstream (on top of the system's). */
  caFile?: string;
  /** Skip TLS certificate verification. */
  insecure?: boolean;
  /** Outbound proxy URL; "" for none; absent: HTTP(S)_PROXY / NO_PROXY from the environment. */
  proxy?: string;
}

export interface Transport {
  fetch: Fetch;
  close(): Promise<void>;
}

/**
 * A keep-alive connection pool per upstream, covering the registry, its token realm and the object storage
 * it redirects to: timeouts, host pinning, CA bundle and proxy apply to all three.
 */
export function createTransport(opts: TransportOptions): Transport {
  const pins = new HostPins(opts.hosts ?? {});
  const tls = {
    ...(opts.caFile ? { ca: [...rootCertificates, readFileSync(opts.caFile, 'utf8')] } : {}),
    ...(opts.insecure ? { rejectUnauthorized: false } : {}),
  };
  const connect = { timeout: opts.connectTimeoutMs, ...tls, ...(pins.size ? { lookup: pins.lookup() } : {}) };
  const common = {
    headersTimeout: opts.responseTimeoutMs,
    bodyTimeout: opts.idleTimeoutMs,
    keepAliveTimeout: 30_000,
    connections: 64,
  };
  let dispatcher: Dispatcher;
  if (opts.proxy) dispatcher = new ProxyAgent({ uri: opts.proxy, ...common, requestTls: connect, proxyTls: { timeout: opts.connectTimeoutMs } });
  else if (opts.proxy === '' || !hasProxyEnv()) dispatcher = new Agent({ ...common, connect });
  else dispatcher = new EnvHttpProxyAgent({ ...common, connect });
  return {
    fetch: (url, init) => undiciFetch(url, { ...init, redirect: 'manual', dispatcher }) as unknown as Promise<Response>,
    close: () => dispatcher.close(),
  };
}

function hasProxyEnv(): boolean {
  return ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy'].some((k) => process.env[k]);
}
