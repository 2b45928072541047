import { Agent, fetch as undiciFetch } from 'undici';

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
}

export interface Transport {
  fetch: Fetch;
  close(): Promise<void>;
}

/** A keep-alive connection pool per upstream with connect, header and idle-body timeouts. */
export function createTransport(opts: TransportOptions): Transport {
  const agent = new Agent({
    connect: { timeout: opts.connectTimeoutMs },
    headersTimeout: opts.responseTimeoutMs,
    bodyTimeout: opts.idleTimeoutMs,
    keepAliveTimeout: 30_000,
    connections: 64,
  });
  return {
    fetch: (url, init) =>
      undiciFetch(url, { ...init, redirect: 'manual', dispatcher: agent }) as unknown as Promise<Response>,
    close: () => agent.close(),
  };
}
