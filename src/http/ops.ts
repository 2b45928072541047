import { Hono } from 'hono';
import type { Metrics, UpstreamState } from '../observability/metrics.js';

export interface OpsDeps {
  /** Readiness checks by name (the database answers, the cache can be written): each throws why it fails. */
  checks: Record<string, () => void | Promise<void>>;
  metrics: Metrics;
  upstreams: Record<string, UpstreamState>;
}

/**
 * /healthz: the process answers. /readyz: every check passes (the database answers, the cache is writable); upstream
 * state is reported, never failing readiness: a mirror with a cold upstream still serves its cache.
 * /metrics: Prometheus text.
 */
export function opsApi(deps: OpsDeps): Hono {
  const app = new Hono();
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const checks: Record<string, string> = {};
    for (const [name, check] of Object.entries(deps.checks)) {
      try {
        await check();
        checks[name] = 'ok';
      } catch (err) {
        checks[name] = `error: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
      }
    }
    const ready = Object.values(checks).every((v) => v === 'ok');
    return c.json({ status: ready ? 'ready' : 'not ready', checks, upstreams: withoutMessages(deps.upstreams) }, ready ? 200 : 503);
  });
  app.get('/metrics', async (c) => {
    return c.body(await deps.metrics.text(), 200, { 'content-type': deps.metrics.registry.contentType });
  });
  return app;
}

/** The last errors' kind and time only: their messages name repositories, and /readyz asks for no credentials. */
function withoutMessages(upstreams: Record<string, UpstreamState>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(upstreams).map(([name, { lastError, ...state }]) => [name, { ...state, lastError: lastError && { kind: lastError.kind, at: lastError.at } }]),
  );
}
