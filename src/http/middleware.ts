import { randomUUID } from 'node:crypto';
import type { HttpBindings } from '@hono/node-server';
import type { Context, MiddlewareHandler } from 'hono';
import type { ClientAccess } from '../access/client-access.js';
import type { RequestAccounting } from '../observability/request-accounting.js';
import { RegistryError } from './errors.js';

/** What a request resolved to, for its log line. */
export interface RequestSubject {
  repo: string;
  ref?: string;
  upstream?: string;
  /** The repository's name on the upstream, when a route rewrites it. */
  upstreamRepo?: string;
}

export type Env = {
  /** Absent under app.request() (tests). */
  Bindings: Partial<HttpBindings> | undefined;
  Variables: {
    requestId?: string;
    client?: string;
    user?: string;
    subject?: RequestSubject;
    /** Cache outcome (hit, miss, joined, stale) of a manifest or blob request. */
    cache?: string;
    /** Status of a response written straight to the Node response (stream-response.ts). */
    sentStatus?: number;
    /** The OCI error code and message an error response answered. */
    failure?: { code: string; error: string };
  };
};

/**
 * A request header. Under @hono/node-server it is read from Node's parsed headers: c.req.header() builds a web
 * Headers object for the request first, a cost paid on every request.
 */
export function requestHeader(c: Context<Env>, name: 'x-request-id' | 'user-agent' | 'authorization' | 'accept' | 'range'): string | undefined {
  const incoming = c.env?.incoming;
  if (!incoming) return c.req.header(name);
  const value = incoming.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

/** Which route a path is, as a bounded metric label. */
export function routeKind(path: string): string {
  if (path === '/v2' || path === '/v2/') return 'ping';
  if (path.startsWith('/v2/')) {
    if (path.includes('/manifests/')) return 'manifest';
    if (path.includes('/blobs/')) return 'blob';
    if (path.endsWith('/tags/list')) return 'tags';
    return 'other';
  }
  if (path === '/metrics' || path === '/healthz' || path === '/readyz') return path.slice(1);
  if (path === '/admin' || path.startsWith('/admin/')) return 'admin';
  if (path.startsWith('/_cluster/')) return 'cluster';
  return 'other';
}

/**
 * Gives each request an id (echoed to the client) and records it when answered: one access-log line and the
 * request metrics (see RequestAccounting). Kept cheap: it runs on every request, thousands per second.
 */
export function requestLog(accounting: RequestAccounting, clientAddress: (c: Context) => string | undefined): MiddlewareHandler<Env> {
  return async (c, next) => {
    const started = performance.now();
    const requestId = requestHeader(c, 'x-request-id') ?? randomUUID();
    c.set('requestId', requestId);
    c.set('client', clientAddress(c));
    // On the Node response the header reaches every response, written by us or by node-server, without a Headers object.
    const outgoing = c.env?.outgoing;
    outgoing?.setHeader('x-request-id', requestId);
    await next();
    if (!outgoing) c.res.headers.set('x-request-id', requestId);
    const seconds = (performance.now() - started) / 1000;
    const path = c.req.path;
    const route = routeKind(path);
    const status = c.get('sentStatus') ?? c.res.status;
    const cache = c.get('cache');
    const method = c.req.method;
    const logged = route !== 'healthz' && route !== 'readyz' && route !== 'metrics';
    accounting.record({
      route,
      method,
      status,
      seconds,
      cache,
      line: logged
        ? {
            requestId,
            method,
            path,
            ns: c.req.query('ns'),
            ...c.get('subject'),
            status,
            client: c.get('client'),
            user: c.get('user'),
            cache,
            ...c.get('failure'),
            userAgent: requestHeader(c, 'user-agent'),
            ms: Math.round(seconds * 10_000) / 10,
          }
        : null,
    });
  };
}

/** Client allow-list (403 DENIED) and, when configured, HTTP Basic login (401 with a challenge). */
export function authorize(access: ClientAccess): MiddlewareHandler<Env> {
  return async (c, next) => {
    const address = c.get('client');
    if (!access.allows(address)) {
      throw new RegistryError('DENIED', `client address ${address ?? 'unknown'} is not allowed to use this mirror (access.allow)`);
    }
    if (access.requiresLogin) {
      const wait = access.loginRetryAfter(address);
      if (wait) throw new RegistryError('TOO_MANY_REQUESTS', 'too many failed logins from this address: try again later', { headers: { 'retry-after': String(wait) } });
      const user = await access.authenticate(requestHeader(c, 'authorization'), address);
      if (!user) throw new RegistryError('UNAUTHORIZED', 'authentication required', { headers: { 'www-authenticate': 'Basic realm="acr-mirror"' } });
      c.set('user', user);
    }
    await next();
  };
}
