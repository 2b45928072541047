import { type Context, Hono } from 'hono';
import { ClientAccess } from './access/client-access.js';
import { ClusterPeers } from './cluster/peers.js';
import { clusterRouting } from './cluster/routing.js';
import { createAdmin } from './admin/admin.js';
import { authorize, type Env, requestLog } from './http/middleware.js';
import { opsApi } from './http/ops.js';
import { errorHandler } from './http/respond.js';
import { Metrics } from './observability/metrics.js';
import { RequestAccounting } from './observability/request-accounting.js';
import type { Logger } from 'pino';
import { type Cache, openCache } from './cache/cache.js';
import type { Db } from './cache/db.js';
import type { BlobFills } from './cache/inflight.js';
import type { Config } from './config/load.js';
import type { Secret } from './config/secret.js';
import { BlobService } from './proxy/blob-service.js';
import { ManifestService } from './proxy/manifest-service.js';
import type { MissRouting } from './proxy/miss-routing.js';
import { NotFoundCache } from './proxy/not-found-cache.js';
import { Prefetcher } from './proxy/prefetch.js';
import type { UpstreamTarget } from './proxy/target.js';
import { ReferrersService } from './proxy/referrers-service.js';
import { TagService } from './proxy/tag-service.js';
import { ReferrersStore } from './cache/referrers-store.js';
import { registryApi } from './registry/api.js';
import { clusterApi } from './registry/cluster-api.js';
import { RouteTable } from './routing/routes.js';
import type { RegistryClient } from './upstream/client.js';
import type { Fetch } from './upstream/transport.js';
import { createUpstreamClients } from './upstream/upstreams.js';

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
  const peers = config.cluster ? new ClusterPeers(config.cluster, { log, metrics, now }) : null;
  const cache = await openCache(config, { log, now, metrics, ...(peers ? { shareWrites: (digest: string) => peers.forwardTo(digest) === null } : {}) });
  const { db, blobStore, manifestStore, accessLog, fills } = cache;
  const upstreams = createUpstreamClients(config, { log, metrics, now, ...(deps.fetch ? { fetch: deps.fetch } : {}), ...(deps.sleep ? { sleep: deps.sleep } : {}) });
  const clients = upstreams.clients;

  const routes = new RouteTable(
    config.routes,
    Object.values(config.upstreams).map((u) => ({ upstream: u.name, hosts: [new URL(u.url).host, ...u.aliases] })),
  );
  const route = (name: string, ns?: string): UpstreamTarget => {
    const resolved = routes.require(name, ns);
    return { client: clients.get(resolved.upstream)!, repo: resolved.remoteName };
  };

  const routing = peers ? clusterRouting(peers, cache.shareFill) : undefined;
  const { manifests, referrers, referrersStore, blobs } = createServices(config, cache, routing, { log, now, metrics });
  const prefetcher = config.cache.prefetch ? new Prefetcher(blobs, config.cache.prefetch_concurrency, metrics, log) : null;
  const admin = createAdmin({
    settings: config.admin,
    db,
    manifestStore,
    blobStore,
    manifests,
    blobs,
    referrers,
    referrersStore,
    route,
    upstreams: Object.keys(config.upstreams),
    upstreamHealth: upstreams.health,
    metrics,
    limitBytes: config.storage.max_size ?? null,
    storageDir: config.storage.dir,
    fillsInFlight: () => fills.size,
    now,
    log,
  });
  const api = registryApi({
    route,
    manifests,
    blobs,
    tags: new TagService(manifestStore, log),
    referrers,
    onServed: (kind, bytes) => metrics.servedBytes.inc({ kind }, bytes),
    onTagRequest: admin.tagRequested,
    ...(prefetcher ? { onManifestServed: (target, manifest) => prefetcher.manifestServed(target, manifest) } : {}),
  });

  const app = httpApp(config, deps, { metrics, now, log });
  app.route('/', opsApi({ checks: cache.readiness, reported: cache.reported, metrics, upstreams: upstreams.states }));
  app.route('/', admin.app);
  if (config.cluster) app.route('/', clusterEndpoint(config.cluster.secret, clients, blobs, manifests, metrics));
  app.route('/', api);

  return {
    app,
    metrics,
    fills,
    db,
    beginShutdown: () => {
      admin.stop();
      prefetcher?.stop();
    },
    async close() {
      prefetcher?.stop();
      await upstreams.close();
      await peers?.close();
      admin.close();
      await cache.close();
    },
  };
}

/** The services the registry API, the admin API and the cluster endpoint share. */
function createServices(config: Config, cache: Cache, routing: MissRouting | undefined, { log, now, metrics }: { log: Logger; now: () => number; metrics: Metrics }) {
  const manifests = new ManifestService(cache.manifestStore, {
    ...(routing ? { routing } : {}),
    tagTtlMs: config.cache.tag_ttl,
    now,
    log,
    onStale: (upstream) => metrics.staleServed.inc({ upstream }),
    access: cache.accessLog,
    notFound: new NotFoundCache({ ttlMs: config.cache.not_found_ttl, now, onHit: (upstream) => metrics.notFoundHits.inc({ upstream }) }),
    ...(cache.sharedManifests ? { shared: cache.sharedManifests } : {}),
  });
  const referrersStore = new ReferrersStore(cache.db);
  const referrers = new ReferrersService(referrersStore, cache.manifestStore, {
    tagTtlMs: config.cache.tag_ttl,
    now,
    log,
    onStale: (upstream) => metrics.staleServed.inc({ upstream }),
  });
  const blobs = new BlobService(cache.blobStore, cache.fills, log, metrics, cache.accessLog, { redirect: config.storage.oss?.redirect ?? false, routing });
  return { manifests, referrers, referrersStore, blobs };
}

/** The app before its routes: errors rendered in one place, request logging and accounting, client access. */
function httpApp(config: Config, deps: MirrorDeps, { metrics, now, log }: { metrics: Metrics; now: () => number; log: Logger }): Hono<Env> {
  const access = new ClientAccess(config.access.allow, config.access.users, now);
  const app = new Hono<Env>();
  app.onError(errorHandler(log));
  const accounting = new RequestAccounting(log, metrics);
  metrics.sources.pending = accounting.flush;
  app.use('*', requestLog(accounting, deps.clientAddress ?? socketAddress));
  app.use('/v2', authorize(access));
  app.use('/v2/*', authorize(access));
  app.use('/metrics', authorize(access));
  return app;
}

/** /_cluster/v1: the misses other members forward to this one, for the upstreams it knows by name. */
function clusterEndpoint(secret: Secret, clients: Map<string, RegistryClient>, blobs: BlobService, manifests: ManifestService, metrics: Metrics): Hono<Env> {
  const target = (upstream: string, repo: string) => (clients.has(upstream) ? { client: clients.get(upstream)!, repo } : null);
  return clusterApi({ secret, target, blobs, manifests, onServed: (kind, bytes) => metrics.servedBytes.inc({ kind }, bytes) });
}

function socketAddress(c: Context<Env>): string | undefined {
  return c.env?.incoming?.socket.remoteAddress;
}
