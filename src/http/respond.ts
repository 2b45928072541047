import type { ErrorHandler } from 'hono';
import type { Logger } from 'pino';
import { RegistryError } from './errors.js';
import type { Env } from './middleware.js';

/**
 * Headers of every /v2 answer (and every error). A manifest or blob opened in a browser is never sniffed into
 * HTML nor allowed to run anything: the admin session cookie works on this origin. Spread into each answer's
 * header object, so the fast paths that write the Node response directly carry them at no extra cost.
 */
export const REGISTRY_HEADERS = {
  'docker-distribution-api-version': 'registry/2.0',
  'x-content-type-options': 'nosniff',
  'content-security-policy': "default-src 'none'; sandbox",
};

/**
 * The app's one error handler: whatever a route throws answers as an OCI error, whose code and message the
 * request's log line carries; unexpected ones are logged.
 */
export function errorHandler(log: Logger): ErrorHandler<Env> {
  return (err, c) => {
    if (!(err instanceof RegistryError)) log.error({ err, path: c.req.path }, 'unhandled error');
    const answer = RegistryError.from(err);
    c.set('failure', { code: answer.code, error: answer.message });
    return answer.getResponse({ head: c.req.method === 'HEAD', headers: REGISTRY_HEADERS });
  };
}
