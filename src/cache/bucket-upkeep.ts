import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { OssStorageConfig } from '../config/storage.js';
import type { OssObserver } from '../observability/oss-metrics.js';
import { BucketEviction } from './bucket-eviction.js';
import { BucketLease } from './bucket-lease.js';
import type { Db } from './db.js';
import { bucketKeyPrefix, ossClient, type OssSettings } from './oss-client.js';
import { OssObjects } from './oss-objects.js';

export interface BucketUpkeepDeps {
  log: Logger;
  now: () => number;
  observer: OssObserver;
  /** How the bucket is reached and signed for (shared with the store: one credentials provider). */
  settings: OssSettings;
  onEvicted: (blobs: number, bytes: number) => void;
  /** After each round: whether this replica holds the evictor lease. */
  holding: (held: boolean) => void;
}

/** The lease lasts a minute and is renewed every half; replicas' clocks must agree within 10 s (NTP does far better). */
const LEASE_TTL_MS = 60_000;
const SKEW_MARGIN_MS = 10_000;
const ROUND_EVERY_MS = 30_000;
/** Blobs used or committed within the last hour stay (the image being pulled now). */
const MIN_AGE_MS = 3_600_000;

/**
 * With storage.oss.max_size: every replica tries an eviction round every 30 s, and only the evictor lease's
 * holder evicts. Returns the function that stops it (waiting for a round under way) and gives the lease up.
 */
export function startBucketUpkeep(oss: OssStorageConfig & { max_size: number }, db: Db, deps: BucketUpkeepDeps): () => Promise<void> {
  const bucket = oss.bucket;
  const objects = new OssObjects(ossClient(deps.settings), bucket, deps.observer);
  const prefix = bucketKeyPrefix(oss.prefix);
  const holder = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  const lease = new BucketLease({ objects, prefix, name: 'evictor', holder, now: deps.now, ttlMs: LEASE_TTL_MS, skewMarginMs: SKEW_MARGIN_MS });
  const eviction = new BucketEviction({
    objects, lease, prefix, maxBytes: oss.max_size, lowWatermark: 0.9, minAgeMs: MIN_AGE_MS, lastUse: localLastUse(db),
    now: deps.now, log: deps.log, onEvicted: deps.onEvicted,
  });
  let running: Promise<unknown> | null = null;
  const round = () => {
    running ??= eviction.run().then(() => deps.holding(lease.holds())).catch((err: unknown) => deps.log.error({ err: (err as Error).message, bucket }, 'bucket eviction failed')).finally(() => (running = null));
  };
  const timer = setInterval(round, ROUND_EVERY_MS);
  timer.unref();
  round();
  return async () => {
    clearInterval(timer);
    eviction.stop();
    await running;
    await lease.release().catch(() => {}); // else the next holder waits for it to expire
  };
}

/**
 * This replica's last use of a blob or of a manifest referencing it, from its SQLite index. A blob row whose
 * last_access is still its created_at was never used since it was recorded: adopted by reconcile from the bucket
 * at start-up (not a use), or committed by a fill (then the object's LastModified says as much).
 */
function localLastUse(db: Db): (digest: string) => number | undefined {
  const query = db.prepare<[string], { at: number }>(
    `SELECT max(CASE WHEN b.last_access > b.created_at THEN b.last_access ELSE 0 END, coalesce(max(m.last_access), 0)) AS at FROM blobs b
       LEFT JOIN refs r ON r.child = b.digest
       LEFT JOIN manifests m ON m.digest = r.manifest
     WHERE b.digest = ? GROUP BY b.digest`,
  );
  return (digest) => query.get(digest)?.at;
}
