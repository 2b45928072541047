import type { Context } from 'hono';
import type { Logger } from 'pino';
import { RegistryError, renderError } from './errors.js';

export const API_VERSION = { 'docker-distribution-api-version': 'registry/2.0' };

/** The HTTP response for any error thrown while serving a request. */
export function errorResponse(c: Context, err: unknown, log: Logger): Response {
  const rendered = renderError(err);
  if (!(err instanceof RegistryError)) log.error({ err, path: c.req.path }, 'unhandled error');
  const body = c.req.method === 'HEAD' ? null : rendered.body;
  return new Response(body, { status: rendered.status, headers: { ...API_VERSION, ...rendered.headers } });
}
