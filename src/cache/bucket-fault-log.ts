import type { Logger } from 'pino';
import { OncePerWindow } from '../util/once-per-window.js';

const WINDOW_MS = 60_000;

/** What the mirror did without the bucket: it looked a blob up elsewhere, or kept a fill on the local disk only. */
export type BucketFallback = 'lookup' | 'upload';

const MESSAGES: Record<BucketFallback, string> = {
  lookup: 'bucket lookup failed: taken as a miss',
  upload: 'bucket upload failed: the blob is kept on the local disk only',
};

/**
 * The warn line of a bucket that failed while the mirror carried on without it (OSS down, timing out, answering
 * 5xx, refusing the credentials). One line per fallback per minute, saying how many more there were since the
 * last: an outage does not flood the log.
 */
export class BucketFaultLog {
  readonly #limiter: OncePerWindow;

  constructor(
    private readonly log: Logger,
    now: () => number = Date.now,
  ) {
    this.#limiter = new OncePerWindow(WINDOW_MS, now);
  }

  report(fallback: BucketFallback, digest: string, err: unknown): void {
    const since = this.#limiter.admit(fallback);
    if (since === null) return;
    this.log.warn({ digest, err: (err as Error).message, ...(since ? { repeatedSinceLastLine: since } : {}) }, MESSAGES[fallback]);
  }
}
