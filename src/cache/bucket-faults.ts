import type { Logger } from 'pino';
import { OncePerWindow } from '../util/once-per-window.js';

const LOG_WINDOW_MS = 60_000;
/**
 * After a bucket failure the bucket is left alone this long (lookups are misses, fills go to the local disk only):
 * an unreachable or stalling bucket costs one timeout per rest, not one per request.
 */
export const BUCKET_REST_MS = 30_000;

/**
 * What the mirror did without the bucket: it looked a blob or manifest up elsewhere, kept a fill on the local disk
 * only, or started without aborting the multipart uploads a crashed process left (garbage collection tries again).
 */
export type BucketFallback = 'lookup' | 'upload' | 'cleanup';

const MESSAGES: Record<BucketFallback, string> = {
  lookup: 'bucket lookup failed: taken as a miss',
  upload: 'bucket upload failed: the blob is kept on the local disk only',
  cleanup: 'bucket cleanup at start-up failed: stale multipart uploads are left to garbage collection',
};

/**
 * The bucket's failures while the mirror carries on without it (OSS down, timing out, answering 5xx, refusing the
 * credentials): each starts a rest, and is logged at warn once per fallback per minute, saying how many more
 * there were since the last line, so an outage does not flood the log.
 */
export class BucketFaults {
  readonly #limiter: OncePerWindow;
  #restingUntil = 0;

  constructor(
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.#limiter = new OncePerWindow(LOG_WINDOW_MS, now);
  }

  /** True while the bucket rests after a failure: it is not asked. */
  get resting(): boolean {
    return this.now() < this.#restingUntil;
  }

  /** fields say what was looked up or uploaded (a digest; an upstream, repository and tag). */
  failed(fallback: BucketFallback, fields: Record<string, string>, err: unknown): void {
    this.#restingUntil = this.now() + BUCKET_REST_MS;
    const since = this.#limiter.admit(fallback);
    if (since === null) return;
    this.log.warn({ ...fields, err: (err as Error).message, ...(since ? { repeatedSinceLastLine: since } : {}) }, MESSAGES[fallback]);
  }
}
