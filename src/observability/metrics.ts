import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type CacheKind = 'manifest' | 'blob';

/**
 * Every metric the mirror exports, in one place (Prometheus naming: acr_mirror_*_total, _bytes, _seconds).
 * Labels are bounded: route kinds, status codes, cache outcomes, configured upstream names, error kinds.
 * No label ever holds a repository, a URL or a credential.
 */
export class Metrics {
  readonly registry = new Registry();
  // The per-request metrics are brought up to date whenever they are read (scrape, /admin/stats).
  readonly requests = new Counter({
    name: 'acr_mirror_http_requests_total',
    help: 'Client requests by route and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
    collect: (): void => this.sources.pending(),
  });
  readonly requestDuration = new Histogram({
    name: 'acr_mirror_http_request_duration_seconds',
    help: 'Time to response headers, by route',
    labelNames: ['route'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
    collect: (): void => this.sources.pending(),
  });
  readonly cache = new Counter({
    name: 'acr_mirror_cache_requests_total',
    help: 'Manifest and blob lookups by outcome (hit, miss, joined, stale)',
    labelNames: ['kind', 'outcome'] as const,
    registers: [this.registry],
    collect: (): void => this.sources.pending(),
  });
  readonly servedBytes = new Counter({ name: 'acr_mirror_served_bytes_total', help: 'Body bytes sent to clients', labelNames: ['kind'] as const, registers: [this.registry] });
  readonly upstreamBytes = new Counter({ name: 'acr_mirror_upstream_bytes_total', help: 'Body bytes received from each upstream (manifests and blobs)', labelNames: ['upstream', 'kind'] as const, registers: [this.registry] });
  /** Read when scraped: set by the composition root to the live values. */
  readonly sources = {
    /** Brings figures kept aside up to date (requests recorded but not yet accounted for). */
    pending: (): void => {},
    fillsInFlight: (): number => 0,
    cache: (): { blobs: number; bytes: number } => ({ blobs: 0, bytes: 0 }),
  };
  readonly fillsInFlight: Gauge = new Gauge({
    name: 'acr_mirror_fills_in_flight',
    help: 'Blob downloads running now',
    registers: [this.registry],
    collect: (): void => this.fillsInFlight.set(this.sources.fillsInFlight()),
  });
  readonly fillJoins = new Counter({ name: 'acr_mirror_fill_joins_total', help: 'Client requests that joined a running blob download instead of starting one', registers: [this.registry] });
  readonly fillSegments = new Histogram({
    name: 'acr_mirror_fill_segments',
    help: 'Byte ranges each committed blob download was fetched in (1: one sequential stream)',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128],
    registers: [this.registry],
  });
  readonly fillThroughput = new Histogram({
    name: 'acr_mirror_fill_throughput_bytes_per_second',
    help: 'Bytes per second of each committed blob download of at least 1 MiB, from its start to its commit, by upstream',
    labelNames: ['upstream'] as const,
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000].map((mib) => mib * 1024 * 1024),
    registers: [this.registry],
  });
  readonly prefetches = new Counter({
    name: 'acr_mirror_prefetches_total',
    help: 'Blobs of served image manifests fetched ahead: started, joined (already filling), dropped (not cached: cache not writable, no room under storage.max_size, no free download slot, queue full, download failed)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly fills = new Counter({ name: 'acr_mirror_fills_total', help: 'Finished blob downloads by result (committed, relayed, failed, abandoned, not_found: the upstream does not have the blob, dropped: not cachable and nobody to relay it to)', labelNames: ['result'] as const, registers: [this.registry] });
  readonly tokenRequests = new Counter({ name: 'acr_mirror_token_requests_total', help: 'Bearer token requests to each upstream token service, by result', labelNames: ['upstream', 'result'] as const, registers: [this.registry] });
  readonly upstreamErrors = new Counter({ name: 'acr_mirror_upstream_errors_total', help: 'Failed upstream exchanges by upstream and kind', labelNames: ['upstream', 'kind'] as const, registers: [this.registry] });
  readonly cacheWriteErrors = new Counter({ name: 'acr_mirror_cache_write_errors_total', help: 'Blob fills that could not write the cache (disk full, read-only...) and relayed instead', labelNames: ['code'] as const, registers: [this.registry] });
  readonly evictions = new Counter({ name: 'acr_mirror_evictions_total', help: 'Cache entries evicted to stay under storage.max_size', labelNames: ['kind'] as const, registers: [this.registry] });
  readonly evictedBytes = new Counter({ name: 'acr_mirror_evicted_bytes_total', help: 'Blob bytes evicted to stay under storage.max_size', registers: [this.registry] });
  readonly cacheLimit = new Gauge({ name: 'acr_mirror_cache_limit_bytes', help: 'storage.max_size (absent when unbounded)', registers: [this.registry] });
  readonly upstreamUp = new Gauge({ name: 'acr_mirror_upstream_up', help: '1 while the upstream breaker is closed, 0 while the upstream is marked down', labelNames: ['upstream'] as const, registers: [this.registry] });
  readonly staleServed = new Counter({ name: 'acr_mirror_stale_served_total', help: 'Cached tags and referrers lists served because the upstream could not be asked', labelNames: ['upstream'] as const, registers: [this.registry] });
  readonly notFoundHits = new Counter({ name: 'acr_mirror_not_found_hits_total', help: 'Manifest requests answered 404 from the negative cache (cache.not_found_ttl) without asking the upstream', labelNames: ['upstream'] as const, registers: [this.registry] });
  readonly clusterForwarded = new Counter({
    name: 'acr_mirror_cluster_forwarded_total',
    help: 'Blob and manifest misses answered by the cluster member that owns the digest instead of the upstream',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly clusterOwnerUnreachable = new Counter({
    name: 'acr_mirror_cluster_owner_unreachable_total',
    help: 'Forwarded misses the owner did not answer (network, timeout, status, not_found); this replica fetched them itself',
    labelNames: ['kind', 'reason'] as const,
    registers: [this.registry],
  });
  readonly ossRequests = new Counter({ name: 'acr_mirror_oss_requests_total', help: 'OSS requests (each attempt) by operation and result (ok, not_found, error)', labelNames: ['operation', 'result'] as const, registers: [this.registry] });
  readonly ossErrors = new Counter({ name: 'acr_mirror_oss_errors_total', help: 'Failed OSS requests by operation and OSS error code (or connection error)', labelNames: ['operation', 'code'] as const, registers: [this.registry] });
  readonly ossBytes = new Counter({ name: 'acr_mirror_oss_bytes_total', help: 'Object body bytes sent to and received from OSS', labelNames: ['direction'] as const, registers: [this.registry] });
  readonly ossEvictorLease = new Gauge({ name: 'acr_mirror_oss_evictor_lease', help: '1 while this replica holds the bucket evictor lease (storage.oss.max_size), else 0', registers: [this.registry] });
  readonly ossRequestDuration = new Histogram({
    name: 'acr_mirror_oss_request_duration_seconds',
    help: 'OSS request latency by operation (a streamed GET: until its headers)',
    labelNames: ['operation'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly cacheBytes: Gauge = new Gauge({
    name: 'acr_mirror_cache_size_bytes',
    help: 'Bytes of committed blobs in the cache',
    registers: [this.registry],
    collect: (): void => this.cacheBytes.set(this.sources.cache().bytes),
  });
  readonly cacheBlobs: Gauge = new Gauge({
    name: 'acr_mirror_cache_blobs',
    help: 'Committed blobs in the cache',
    registers: [this.registry],
    collect: (): void => this.cacheBlobs.set(this.sources.cache().blobs),
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'acr_mirror_' });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}

/** What the upstream client and blob fills report about one upstream. */
export interface UpstreamObserver {
  token(result: 'ok' | 'error'): void;
  /** message: the one the client got (operator-facing, never a credential or a signed URL). */
  error(kind: string, message: string): void;
  received(kind: CacheKind, bytes: number): void;
}

/** Last seen success and failure of one upstream, for /readyz and the admin page. */
export interface UpstreamState {
  /** down while the breaker has the upstream marked down; offline when it is never contacted (offline = true). */
  status: 'up' | 'down' | 'offline';
  lastSuccess: string | null;
  lastError: { kind: string; message: string; at: string } | null;
}

export function upstreamObserver(metrics: Metrics, upstream: string, state: UpstreamState, now: () => number): UpstreamObserver {
  // Told of every body chunk of a blob download: the time is formatted at most once a second.
  let okAt = -Infinity;
  const ok = () => {
    const at = now();
    if (Math.abs(at - okAt) < 1000) return;
    okAt = at;
    state.lastSuccess = new Date(at).toISOString();
  };
  return {
    token: (result) => {
      metrics.tokenRequests.inc({ upstream, result });
      if (result === 'ok') ok();
    },
    error: (kind, message) => {
      metrics.upstreamErrors.inc({ upstream, kind });
      state.lastError = { kind, message, at: new Date(now()).toISOString() };
    },
    received: (kind, bytes) => {
      metrics.upstreamBytes.inc({ upstream, kind }, bytes);
      ok();
    },
  };
}

/** For tests and tools that do not export metrics. */
export const NO_OBSERVER: UpstreamObserver = { token() {}, error() {}, received() {} };
