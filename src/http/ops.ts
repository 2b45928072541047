import { randomBytes } from 'node:crypto';
import { unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Hono } from 'hono';
import type { Db } from '../cache/db.js';
import type { Metrics, UpstreamState } from '../observability/metrics.js';

export interface OpsDeps {
  db: Db;
  /** A directory the cache must be able to write (tmp/). */
  writableDir: string;
  metrics: Metrics;
  upstreams: Record<string, UpstreamState>;
}

/**
 * /healthz: the process answers. /readyz: the database answers and the cache directory is writable (upstream
 * state is reported, never failing readiness: a mirror with a cold upstream still serves its cache).
 * /metrics: Prometheus text.
 */
export function opsApi(deps: OpsDeps): Hono {
  const app = new Hono();
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const checks: Record<string, string> = {};
    try {
      deps.db.prepare('SELECT 1').get();
      checks.database = 'ok';
    } catch (err) {
      checks.database = `error: ${(err as Error).message}`;
    }
    const probe = join(deps.writableDir, `.readyz-${randomBytes(4).toString('hex')}`);
    try {
      await writeFile(probe, 'ok');
      await unlink(probe);
      checks.cacheDir = 'ok';
    } catch (err) {
      checks.cacheDir = `error: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
    }
    const ready = Object.values(checks).every((v) => v === 'ok');
    return c.json({ status: ready ? 'ready' : 'not ready', checks, upstreams: deps.upstreams }, ready ? 200 : 503);
  });
  app.get('/metrics', async (c) => {
    return c.body(await deps.metrics.text(), 200, { 'content-type': deps.metrics.registry.contentType });
  });
  return app;
}
