import type { ErrorHandler } from 'hono';
import type { Logger } from 'pino';
import { RegistryError } from './errors.js';

export const API_VERSION = { 'docker-distribution-api-version': 'registry/2.0' };

/** The app's one error handler: whatever a route throws answers as an OCI error; unexpected ones are logged. */
export function errorHandler(log: Logger): ErrorHandler {
  return (err, c) => {
    if (!(err instanceof RegistryError)) log.error({ err, path: c.req.path }, 'unhandled error');
    return RegistryError.from(err).getResponse({ head: c.req.method === 'HEAD', headers: API_VERSION });
  };
}
