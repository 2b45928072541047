import { Hono } from 'hono';
import type { Metrics, UpstreamState } from '../observability/metrics.js';

type Check = () => void | Promise<void>;

export interface OpsDeps {
  /** Readiness checks by name (the database answers, the cache can be written): each throws why it fails. */
  checks: Record<string, Check>;
  /** Checks reported with the others that never fail readiness (the bucket: a replica without it still serves). */
  reported?: Record<string, Check>;
  metrics: Metrics;
  upstreams: Record<string, UpstreamState>;
}

/**
 * /healthz: the process answers. /readyz: every check passes (the database answers, the cache is writable); upstream
 * state and the reported checks are reported, never failing readiness: a mirror with a cold upstream or without its
 * bucket still serves.
 * /metrics: Prometheus text.
 */
export function opsApi(deps: OpsDeps): Hono {
  const app = new Hono();
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const required = await outcomes(deps.checks);
    const ready = Object.values(required).every((v) => v === 'ok');
    const checks = { ...required, ...(await outcomes(deps.reported ?? {})) };
    return c.json({ status: ready ? 'ready' : 'not ready', checks, upstreams: withoutMessages(deps.upstreams) }, ready ? 200 : 503);
  });
  app.get('/metrics', async (c) => {
    return c.body(await deps.metrics.text(), 200, { 'content-type': deps.metrics.registry.contentType });
  });
  return app;
}

/** Each check's outcome by name: 'ok' or 'error: ' and why. */
async function outcomes(checks: Record<string, Check>): Promise<Record<string, string>> {
  const found: Record<string, string> = {};
  for (const [name, check] of Object.entries(checks)) {
    try {
      await check();
      found[name] = 'ok';
    } catch (err) {
      found[name] = `error: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
    }
  }
  return found;
}

/** The last errors' kind and time only: their messages name repositories, and /readyz asks for no credentials. */
function withoutMessages(upstreams: Record<string, UpstreamState>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(upstreams).map(([name, { lastError, ...state }]) => [name, { ...state, up: state.status === 'up', lastError: lastError && { kind: lastError.kind, at: lastError.at } }]),
  );
}
