import type { Metrics } from './metrics.js';

/** Cache lookups by outcome (manifests and blobs): a hit is served from the cache, stale too (upstream unavailable). */
export interface CacheOutcomes {
  hit: number;
  miss: number;
  joined: number;
  stale: number;
}

/** Since start-up: client lookups by cache outcome, body bytes sent to clients and received from upstreams. */
export interface TrafficTotals {
  outcomes: CacheOutcomes;
  served: number;
  upstream: number;
}

export async function readTraffic(metrics: Metrics): Promise<TrafficTotals> {
  const outcomes: CacheOutcomes = { hit: 0, miss: 0, joined: 0, stale: 0 };
  for (const v of (await metrics.cache.get()).values) {
    const outcome = v.labels.outcome as keyof CacheOutcomes;
    if (outcome in outcomes) outcomes[outcome] += v.value;
  }
  const sum = async (counter: { get(): Promise<{ values: { value: number }[] }> }) =>
    (await counter.get()).values.reduce((n, v) => n + v.value, 0);
  return { outcomes, served: await sum(metrics.servedBytes), upstream: await sum(metrics.upstreamBytes) };
}

/** (hit + stale) / all lookups, or null without any. */
export function hitRatio(o: CacheOutcomes): number | null {
  const all = o.hit + o.miss + o.joined + o.stale;
  return all ? (o.hit + o.stale) / all : null;
}
