import type { UpstreamState } from '../observability/metrics.js';
import type { BreakerStatus, CircuitBreaker } from './breaker.js';

/** One upstream as the admin API and page show it. Nothing in it comes from a credential or a signed URL. */
export interface UpstreamHealth {
  name: string;
  /** The registry's host (from upstreams.<name>.url). */
  host: string;
  /** offline: configured so (cache.offline or upstreams.<name>.offline); down: the breaker holds it off. */
  state: 'up' | 'down' | 'offline';
  lastSuccess: string | null;
  /** The last failed exchange, with the message its client got. */
  lastError: { kind: string; message: string; at: string } | null;
  breaker: Omit<BreakerStatus, 'retryAt'> & { retryAt: string | null };
}

export interface WatchedUpstream {
  name: string;
  url: string;
  state: UpstreamState;
  breaker: CircuitBreaker;
}

export function upstreamHealth(upstream: WatchedUpstream): UpstreamHealth {
  const breaker = upstream.breaker.status();
  return {
    name: upstream.name,
    host: new URL(upstream.url).host,
    state: upstream.state.status,
    lastSuccess: upstream.state.lastSuccess,
    lastError: upstream.state.lastError,
    breaker: { ...breaker, retryAt: breaker.retryAt === null ? null : new Date(breaker.retryAt).toISOString() },
  };
}
