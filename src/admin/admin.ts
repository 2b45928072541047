import type { Hono } from 'hono';
import type { Logger } from 'pino';
import type { BlobStore } from '../cache/blob-store.js';
import type { Db } from '../cache/db.js';
import type { ManifestStore } from '../cache/manifest-store.js';
import type { AdminSettings } from '../config/load.js';
import type { Env } from '../http/middleware.js';
import type { Metrics } from '../observability/metrics.js';
import type { BlobService } from '../proxy/blob-service.js';
import type { ManifestService } from '../proxy/manifest-service.js';
import type { ReferrersService } from '../proxy/referrers-service.js';
import type { ReferrersStore } from '../cache/referrers-store.js';
import type { UpstreamTarget } from '../proxy/target.js';
import { TrafficHistory } from '../observability/traffic-history.js';
import { readTraffic } from '../observability/traffic.js';
import type { UpstreamHealth } from '../upstream/health.js';
import { freeSpace } from '../util/free-space.js';
import { adminApi } from './api.js';
import { AdminAuth } from './auth.js';
import { Inventory } from './inventory.js';
import { JobStore } from './jobs.js';
import { TagUsage } from './tag-usage.js';
import { Warmer } from './warmer.js';

export interface AdminDeps {
  settings: AdminSettings;
  db: Db;
  manifestStore: ManifestStore;
  blobStore: BlobStore;
  manifests: ManifestService;
  blobs: BlobService;
  referrers: ReferrersService;
  referrersStore: ReferrersStore;
  route(name: string): UpstreamTarget;
  upstreams: string[];
  upstreamHealth: () => UpstreamHealth[];
  metrics: Metrics;
  /** storage.max_size, or null when the cache is unbounded. */
  limitBytes: number | null;
  /** storage.dir: the page shows the free space of its file system. */
  storageDir: string;
  fillsInFlight: () => number;
  now: () => number;
  log: Logger;
}

export interface Admin {
  app: Hono<Env>;
  /** Tells the tag counters that a client got upstream/repo:tag. */
  tagRequested(upstream: string, repo: string, tag: string): void;
  /** Shutdown begins: warm jobs start no more downloads and event streams end, so the drain is not held up. */
  stop(): void;
  /** Writes what is pending to the database (before it closes). */
  close(): void;
}

/** The traffic chart's window. */
const TRAFFIC_MINUTES = 60;

/** The admin side: warm jobs (resumed from SQLite at start), tag usage counts, traffic history, the /admin API and page. */
export function createAdmin(deps: AdminDeps): Admin {
  const usage = new TagUsage(deps.db, deps.now);
  const warmer = new Warmer({
    route: deps.route,
    manifests: deps.manifests,
    blobs: deps.blobs,
    referrers: deps.referrers,
    jobs: new JobStore(deps.db),
    concurrency: deps.settings.warm_concurrency,
    now: deps.now,
    log: deps.log.child({ component: 'warm' }),
  });
  const inventory = new Inventory({
    db: deps.db,
    manifests: deps.manifestStore,
    referrers: deps.referrersStore,
    metrics: deps.metrics,
    usage,
    limitBytes: deps.limitBytes,
    freeBytes: () => freeSpace(deps.storageDir),
    fillsInFlight: deps.fillsInFlight,
    warmJobsRunning: () => warmer.runningJobs,
  });
  const token = deps.settings.token;
  if (token) {
    deps.log.info({ tokenFrom: deps.settings.tokenSource }, 'admin API enabled at /admin/ (web page: /admin/ui)');
  } else {
    deps.log.info('admin API disabled: no admin token configured (set ACR_MIRROR_ADMIN_TOKEN, admin.token_env or admin.token_file)');
  }
  warmer.resume();
  const traffic = new TrafficHistory({ read: () => readTraffic(deps.metrics), now: deps.now, minutes: TRAFFIC_MINUTES });
  // Sampled for the page only: nothing reads it while the admin API is off.
  if (token) traffic.start();
  const stop = () => {
    warmer.close();
    traffic.stop();
  };
  return {
    app: adminApi({
      auth: token ? new AdminAuth(token, deps.now) : null,
      warmer,
      inventory,
      traffic,
      upstreams: deps.upstreams,
      upstreamHealth: deps.upstreamHealth,
      bundles: {
        route: deps.route,
        manifests: deps.manifests,
        blobs: deps.blobs,
        referrers: deps.referrers,
        manifestStore: deps.manifestStore,
        blobStore: deps.blobStore,
        maxBytes: deps.limitBytes,
      },
      allow: deps.settings.allow,
      httpsListener: deps.settings.httpsListener,
      now: deps.now,
      log: deps.log,
    }),
    tagRequested: (upstream, repo, tag) => usage.record(upstream, repo, tag),
    stop,
    close() {
      stop();
      usage.close();
    },
  };
}
