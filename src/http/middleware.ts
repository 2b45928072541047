import { randomUUID } from 'node:crypto';
import type { HttpBindings } from '@hono/node-server';
import type { Context, MiddlewareHandler } from 'hono';
import type { Logger } from 'pino';
import type { ClientAccess } from '../access/client-access.js';
import type { Metrics } from '../observability/metrics.js';
import { RegistryError } from './errors.js';

/** What a request resolved to, for its log line. */
export interface RequestSubject {
  repo: string;
  ref?: string;
  upstream?: string;
}

/** A response already written to the Node response (see stream-response.ts): what its log line needs. */
export interface SentResponse {
  status: number;
  cache: string | undefined;
}

export type Env = {
  /** Absent under app.request() (tests). */
  Bindings: Partial<HttpBindings> | undefined;
  Variables: { user?: string; subject?: RequestSubject; requestId?: string; sent?: SentResponse };
};

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
  return 'other';
}

/** One JSON log line and the request metrics per request, with a request id echoed to the client. */
export function requestLog(log: Logger, metrics: Metrics, clientAddress: (c: Context) => string | undefined): MiddlewareHandler<Env> {
  return async (c, next) => {
    const started = performance.now();
    const requestId = c.req.header('x-request-id') ?? randomUUID();
    c.set('requestId', requestId);
    await next();
    const seconds = (performance.now() - started) / 1000;
    const route = routeKind(c.req.path);
    const sent = c.get('sent');
    const status = sent?.status ?? c.res.status;
    const cache = sent ? sent.cache : c.res.headers.get('x-cache');
    if (!sent) c.res.headers.set('x-request-id', requestId);
    metrics.requests.inc({ route, method: c.req.method, status: String(status) });
    metrics.requestDuration.observe({ route }, seconds);
    if (cache && (route === 'manifest' || route === 'blob')) metrics.cache.inc({ kind: route, outcome: cache });
    if (route === 'healthz' || route === 'readyz' || route === 'metrics') return;
    log.info(
      {
        requestId,
        method: c.req.method,
        path: c.req.path,
        ns: c.req.query('ns'),
        ...c.get('subject'),
        status,
        client: clientAddress(c),
        user: c.get('user'),
        cache: cache ?? undefined,
        userAgent: c.req.header('user-agent'),
        ms: Math.round(seconds * 10_000) / 10,
      },
      'request',
    );
  };
}

/** Client allow-list (403 DENIED) and, when configured, HTTP Basic login (401 with a challenge). */
export function authorize(access: ClientAccess, clientAddress: (c: Context) => string | undefined): MiddlewareHandler<Env> {
  return async (c, next) => {
    const address = clientAddress(c);
    if (!access.allows(address)) {
      throw new RegistryError('DENIED', `client address ${address ?? 'unknown'} is not allowed to use this mirror (access.allow)`);
    }
    if (access.requiresLogin) {
      const user = await access.authenticate(c.req.header('authorization'));
      if (!user) throw new RegistryError('UNAUTHORIZED', 'authentication required', { headers: { 'www-authenticate': 'Basic realm="acr-mirror"' } });
      c.set('user', user);
    }
    await next();
  };
}
