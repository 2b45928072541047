import { type Context, Hono } from 'hono';
import { ClientAccess } from './access/client-access.js';
import { createAdmin } from './admin/admin.js';
import { authorize, type Env, requestLog } from './http/middleware.js';
import { opsApi } from './http/ops.js';
import { errorHandler } from './http/respond.js';
import { Metrics, type UpstreamState, upstreamObserver } from './observability/metrics.js';
import { RequestAccounting } from './observability/request-accounting.js';
import type { Logger } from 'pino';
import { openCache } from './cache/cache.js';
import type { Db } from './cache/db.js';
import type { BlobFills } from './cache/inflight.js';
import type { Config } from './config/load.js';
import { BlobService } from './proxy/blob-service.js';
import { ManifestService } from './proxy/manifest-service.js';
import type { UpstreamTarget } from './proxy/target.js';
import { TagService } from './proxy/tag-service.js';
import { registryApi } from './registry/api.js';
import { RouteTable } from './routing/routes.js';
import { CircuitBreaker } from './upstream/breaker.js';
import { RegistryClient } from './upstream/client.js';
import { AcrTemporaryCredentials, StaticCredentials } from './upstream/credentials.js';
import { TokenCache } from './upstream/tokens.js';
import { createTransport, type Fetch, type Transport } from './upstream/transport.js';

export interface MirrorDeps {
  log: Logger;
  /** The client's IP address; by default the socket's remote address. */
  clientAddress?: (c: Context) => string | undefined;
  /** Replaces the network for every upstream (tests). */
  fetch?: Fetch;
  now?: () => number;
  /** Replaces the wait between upstream retries (tests). */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export interface Mirror {
  app: Hono<Env>;
  metrics: Metrics;
  fills: BlobFills;
  db: Db;
  /** Shutdown begins: background work that would hold up the drain stops (warm jobs, admin event streams). */
  beginShutdown(): void;
  close(): Promise<void>;
}

/** Builds the whole mirror from its configuration: the composition root, and the only place that wires modules. */
export async function createMirror(config: Config, deps: MirrorDeps): Promise<Mirror> {
  const now = deps.now ?? Date.now;
  const log = deps.log;
  const metrics = new Metrics();
  const cache = await openCache(config, { log, now, metrics });
  const { db, blobStore, manifestStore, accessLog, fills } = cache;
  const upstreamStates: Record<string, UpstreamState> = {};
  const transports: Transport[] = [];
  const clients = new Map<string, RegistryClient>();
  for (const upstream of Object.values(config.upstreams)) {
    let fetch = deps.fetch;
    if (!fetch) {
      const transport = createTransport({
        connectTimeoutMs: upstream.connect_timeout,
        responseTimeoutMs: upstream.response_timeout,
        idleTimeoutMs: upstream.idle_timeout,
        hosts: upstream.hosts,
        insecure: upstream.insecure,
        ...(upstream.ca_file ? { caFile: upstream.ca_file } : {}),
        ...(upstream.proxy !== undefined ? { proxy: upstream.proxy } : {}),
      });
      transports.push(transport);
      fetch = transport.fetch;
    }
    const tokens = new TokenCache({ now, marginMs: upstream.token_margin });
    const credentials = upstream.temporaryCredentials
      ? new AcrTemporaryCredentials(upstream.name, upstream.temporaryCredentials, {
          now,
          log,
          hosts: upstream.hosts,
          ...(upstream.ca_file ? { caFile: upstream.ca_file } : {}),
          timeoutMs: upstream.response_timeout,
        })
      : new StaticCredentials(upstream.credentials);
    const state: UpstreamState = (upstreamStates[upstream.name] = { lastSuccess: null, lastError: null, up: true });
    metrics.upstreamUp.set({ upstream: upstream.name }, 1);
    const breaker = new CircuitBreaker({
      threshold: upstream.breaker_threshold,
      cooldownMs: upstream.breaker_cooldown,
      maxCooldownMs: upstream.breaker_max_cooldown,
      now,
      onChange: (up, detail) => {
        state.up = up;
        metrics.upstreamUp.set({ upstream: upstream.name }, up ? 1 : 0);
        if (up) log.info({ upstream: upstream.name }, 'upstream is back up');
        else log.warn({ upstream: upstream.name, failures: detail.failures, retryInMs: detail.retryInMs }, 'upstream marked down; serving from cache');
      },
    });
    clients.set(
      upstream.name,
      new RegistryClient(upstream, {
        fetch,
        breaker,
        offline: config.cache.offline || upstream.offline,
        credentials,
        tokens,
        now,
        observer: upstreamObserver(metrics, upstream.name, state, now),
        log: log.child({ upstream: upstream.name }),
        ...(deps.sleep ? { sleep: deps.sleep } : {}),
      }),
    );
  }

  const routes = new RouteTable(
    config.routes,
    Object.values(config.upstreams).map((u) => ({ upstream: u.name, hosts: [new URL(u.url).host, ...u.aliases] })),
  );
  const route = (name: string, ns?: string): UpstreamTarget => {
    const resolved = routes.require(name, ns);
    return { client: clients.get(resolved.upstream)!, repo: resolved.remoteName };
  };

  const manifests = new ManifestService(manifestStore, {
    tagTtlMs: config.cache.tag_ttl,
    now,
    log,
    onStale: (upstream) => metrics.staleServed.inc({ upstream }),
    access: accessLog,
  });
  const blobs = new BlobService(blobStore, fills, log, metrics, accessLog);
  const admin = createAdmin({
    settings: config.admin,
    db,
    manifestStore,
    blobStore,
    manifests,
    blobs,
    route,
    upstreams: Object.keys(config.upstreams),
    metrics,
    limitBytes: config.storage.max_size ?? null,
    fillsInFlight: () => fills.size,
    now,
    log,
  });
  const api = registryApi({
    route,
    manifests,
    blobs,
    tags: new TagService(manifestStore, log),
    onServed: (kind, bytes) => metrics.servedBytes.inc({ kind }, bytes),
    onTagRequest: admin.tagRequested,
  });

  const access = new ClientAccess(config.access.allow, config.access.users);
  const clientAddress = deps.clientAddress ?? socketAddress;
  const app = new Hono<Env>();
  app.onError(errorHandler(log));
  const accounting = new RequestAccounting(log, metrics);
  metrics.sources.pending = accounting.flush;
  app.use('*', requestLog(accounting, clientAddress));
  app.use('/v2', authorize(access));
  app.use('/v2/*', authorize(access));
  app.use('/metrics', authorize(access));
  app.route('/', opsApi({ checks: cache.readiness, metrics, upstreams: upstreamStates }));
  app.route('/', admin.app);
  app.route('/', api);

  return {
    app,
    metrics,
    fills,
    db,
    beginShutdown: () => admin.stop(),
    async close() {
      await Promise.all(transports.map((t) => t.close()));
      admin.close();
      await cache.close();
    },
  };
}

function socketAddress(c: Context<Env>): string | undefined {
  return c.env?.incoming?.socket.remoteAddress;
}
