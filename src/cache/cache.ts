import { mkdir } from 'node:fs/promises';
import { type Logger, pino } from 'pino';
import type { Config } from '../config/load.js';
import type { OssStorageConfig } from '../config/storage.js';
import type { Metrics } from '../observability/metrics.js';
import { ossObserver, type OssObserver } from '../observability/oss-metrics.js';
import { AccessLog } from './access-log.js';
import { BlobIndex } from './blob-index.js';
import { startBucketUpkeep } from './bucket-upkeep.js';
import type { BlobStore } from './blob-store.js';
import { type Db, openDatabase } from './db.js';
import { Evictor } from './eviction.js';
import { FsBlobStore } from './fs-blob-store.js';
import { collectGarbage, gcCounts } from './gc.js';
import { BlobFills } from './inflight.js';
import { cacheLayout } from './layout.js';
import { ManifestStore } from './manifest-store.js';
import { OssBlobStore } from './oss-blob-store.js';
import { OssManifestStore } from './oss-manifest-store.js';
import { ossSettingsOf, type OssSettings } from './oss-client.js';
import { reconcile } from './reconcile.js';
import { SharedManifests } from './shared-manifests.js';
import { TieredBlobStore } from './tiered-blob-store.js';

export interface CacheDeps {
  log: Logger;
  now: () => number;
  metrics: Metrics;
  /**
   * With the bucket: whether a fill of digest uploads it there too (in a cluster, only when no other member is
   * fetching it for this replica; that member's fill uploads it; see Cache.shareFill).
   */
  shareWrites?: (digest: string) => boolean;
}

/** The cache, opened and wired: database, blob store, manifests, fills, and its background work. */
export interface Cache {
  db: Db;
  blobStore: BlobStore;
  manifestStore: ManifestStore;
  /** With storage.backend = "oss": manifests and tags in the bucket, shared with other replicas. */
  sharedManifests?: SharedManifests;
  accessLog: AccessLog;
  fills: BlobFills;
  /**
   * A running fill of digest that shareWrites declined (another member was fetching the blob) uploads it to the
   * bucket after all: that member failed and this replica fetches the blob itself. Nothing without the bucket.
   */
  shareFill(digest: string): void;
  /** Readiness checks by name: each resolves when its part of the cache works, or throws why not. */
  readiness: Record<string, () => void | Promise<void>>;
  /**
   * Checks /readyz reports that never fail readiness: the bucket. Without it a replica serves its disk and the
   * upstream; failing readiness would take every replica out of the Service at once during an OSS outage.
   */
  reported: Record<string, () => Promise<void>>;
  /** Stops the background work and closes the database (after everything else using it was closed). */
  close(): Promise<void>;
}

/** The database of a cache directory, creating the directory if needed. */
export async function openCacheDatabase(dir: string): Promise<Db> {
  await mkdir(dir, { recursive: true });
  return openDatabase(cacheLayout(dir).database);
}

/**
 * The blob store: the cache directory's blobs/, or with `oss` (storage.backend = "oss") those as a local copy in
 * front of the bucket (tiered-blob-store.ts). The database's `blobs` table follows the local commits and deletes.
 */
export function openBlobStore(
  dir: string,
  db: Db,
  now: () => number,
  oss?: OssStorageConfig,
  {
    log = pino({ level: 'silent' }),
    shareWrites,
    observer,
    settings,
  }: {
    log?: Logger;
    shareWrites?: (digest: string) => boolean;
    observer?: OssObserver;
    /** How the bucket is reached and signed for, when already made (one credentials provider for the bucket). */
    settings?: OssSettings;
  } = {},
): { store: BlobStore; index: BlobIndex } {
  const layout = cacheLayout(dir);
  const local = new FsBlobStore(layout);
  if (!oss) return { store: local, index: new BlobIndex(db, now).follow(local) };
  const shared = new OssBlobStore({ ...(settings ?? ossSettingsOf(oss)), prefix: oss.prefix, partSize: oss.part_size, tmpDir: layout.tmp, ...(observer ? { observer } : {}) });
  const store = new TieredBlobStore(local, shared, { log, now, ...(shareWrites ? { shareWrites } : {}) });
  return { store, index: new BlobIndex(db, now).follow(store) };
}

export async function openCache(config: Config, deps: CacheDeps): Promise<Cache> {
  const { log, now, metrics } = deps;
  const dir = config.storage.dir;
  const db = await openCacheDatabase(dir);
  const oss = config.storage.oss;
  const settings = oss && ossSettingsOf(oss);
  const observer = ossObserver(metrics);
  const { store, index } = openBlobStore(dir, db, now, oss, { log, observer, ...(settings ? { settings } : {}), ...(deps.shareWrites ? { shareWrites: deps.shareWrites } : {}) });
  await store.prepare();
  const manifestStore = new ManifestStore(db, now);
  const bucket = store instanceof TieredBlobStore && oss && settings ? openBucketParts(oss, { settings, observer }, store, manifestStore, db, deps) : null;
  // In the background: start-up stays fast with a large cache. It snapshots the rows before listing the disk, so
  // blobs committed or evicted meanwhile are never mistaken for inconsistencies.
  void reconcile(index, store, manifestStore, log).catch((err: unknown) => log.error({ err: (err as Error).message }, 'cache reconciliation failed'));
  const accessLog = new AccessLog(db, now);
  const evictor = startEvictor(config, db, store, manifestStore, accessLog, deps);
  const fills = startFills(config, store, evictor, deps);
  const stopGc = startGc(config, db, store, deps);
  metrics.sources.fillsInFlight = () => fills.size;
  metrics.sources.cache = () => index.totals();
  return {
    db,
    blobStore: store,
    manifestStore,
    ...(bucket ? { sharedManifests: bucket.sharedManifests } : {}),
    accessLog,
    fills,
    shareFill: (digest) => {
      if (store instanceof TieredBlobStore) store.shareWriter(digest);
    },
    readiness: { database: () => probeDatabase(db), cacheDir: () => store.probe() },
    reported: store instanceof TieredBlobStore ? { bucket: () => store.shared.probe() } : {},
    async close() {
      stopGc();
      if (store instanceof TieredBlobStore) await store.copiesEnded();
      await bucket?.stopUpkeep?.();
      await evictor?.evict();
      await bucket?.sharedManifests.settled();
      accessLog.close();
      db.close();
    },
  };
}

function probeDatabase(db: Db): void {
  try {
    db.prepare('SELECT 1').get();
  } catch (err) {
    throw new Error((err as Error).message); // reported by its message, not SQLite's code
  }
}

/** With the bucket: manifests and tags shared through it, and its eviction under storage.oss.max_size. */
function openBucketParts(
  oss: OssStorageConfig,
  { settings, observer }: { settings: OssSettings; observer: OssObserver },
  store: TieredBlobStore,
  manifests: ManifestStore,
  db: Db,
  deps: CacheDeps,
) {
  const { log, now, metrics } = deps;
  const sharedManifests = new SharedManifests(new OssManifestStore({ ...settings, prefix: oss.prefix, observer }), manifests, { log, now, faults: store.bucketFaults });
  const stopUpkeep = oss.max_size
    ? startBucketUpkeep({ ...oss, max_size: oss.max_size }, db, {
        log, now, observer, settings,
        onEvicted: (blobs) => metrics.evictions.inc({ kind: 'bucket_blob' }, blobs),
        holding: (held) => metrics.ossEvictorLease.set(held ? 1 : 0),
      })
    : null;
  return { sharedManifests, stopUpkeep };
}

function startFills(config: Config, store: BlobStore, evictor: Evictor | null, deps: CacheDeps): BlobFills {
  const diskFaults = diskFaultReport(deps.log, config.storage.dir, deps.metrics);
  store.on('commit', diskFaults.committed);
  return new BlobFills(
    store,
    {
      timeoutMs: Math.max(...Object.values(config.upstreams).map((u) => u.fill_timeout)),
      maxResumes: 5,
      log: deps.log,
      onDiskError: diskFaults.failed,
      orphanGraceMs: config.cache.orphan_fill_grace,
      ...(evictor ? { space: evictor } : {}),
    },
    { maxFills: config.cache.max_fills, maxPerClient: config.cache.max_fills_per_client },
  );
}

/** Garbage collection every storage.gc_interval (0: never); returns how to stop it. */
function startGc(config: Config, db: Db, store: BlobStore, { log, now }: CacheDeps): () => void {
  if (config.storage.gc_interval <= 0) return () => {};
  const runGc = async () => {
    try {
      const report = gcCounts(await collectGarbage(db, store, { graceMs: config.storage.gc_grace, now }));
      if (report.manifests || report.blobs || report.tempFiles || report.referrerLists) log.info(report, 'garbage collected');
    } catch (err) {
      log.error({ err: (err as Error).message }, 'garbage collection failed');
    }
  };
  const timer = setInterval(() => void runGc(), config.storage.gc_interval);
  timer.unref();
  return () => clearInterval(timer);
}

/** Keeps the blobs under storage.max_size, if set: told of every commit, and run once now if over already. */
function startEvictor(config: Config, db: Db, store: BlobStore, manifests: ManifestStore, access: AccessLog, deps: CacheDeps): Evictor | null {
  const maxBytes = config.storage.max_size;
  if (!maxBytes) return null;
  const { metrics } = deps;
  const evictor = new Evictor(db, store, manifests, access, {
    maxBytes,
    lowWatermark: 0.9,
    log: deps.log,
    keepsManifests: store instanceof TieredBlobStore,
    onEvicted: (blobs, bytes, manifestCount) => {
      metrics.evictions.inc({ kind: 'blob' }, blobs);
      metrics.evictions.inc({ kind: 'manifest' }, manifestCount);
      metrics.evictedBytes.inc(bytes);
    },
  });
  store.on('commit', (blob) => evictor.added(blob.size));
  if (store instanceof TieredBlobStore) store.reserveCopiesIn(evictor);
  metrics.cacheLimit.set(evictor.maxBytes);
  if (evictor.totalBytes > evictor.maxBytes) void evictor.evict();
  return evictor;
}

/** A full or read-only disk is logged once, and again only after a commit has succeeded in between. */
function diskFaultReport(log: Logger, dir: string, metrics: Metrics) {
  let faulty = false;
  return {
    failed(err: NodeJS.ErrnoException, digest: string): void {
      metrics.cacheWriteErrors.inc({ code: err.code ?? 'unknown' });
      if (faulty) return;
      faulty = true;
      log.error({ code: err.code, digest, dir }, 'cannot write the cache: blobs are relayed to clients without being cached');
    },
    committed(): void {
      if (faulty) log.info({ dir }, 'cache writable again');
      faulty = false;
    },
  };
}
