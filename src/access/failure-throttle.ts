import { LRUCache } from 'lru-cache';

export interface FailureThrottleOptions {
  /** Failures an address may have within the window before it is refused. */
  limit: number;
  windowMs: number;
  now: () => number;
}

/**
 * Counts failed logins per client address in a fixed window and says how long an address must wait once it used
 * them up. Bounded: the least recently failing addresses are forgotten first.
 */
export class FailureThrottle {
  readonly #windows = new LRUCache<string, { start: number; failures: number }>({ max: 10_000 });

  constructor(private readonly opts: FailureThrottleOptions) {}

  /** Seconds the address must wait before it may try again, or 0. */
  retryAfter(address: string | undefined): number {
    const window = this.#windows.get(address ?? '');
    if (!window || window.failures < this.opts.limit) return 0;
    const left = window.start + this.opts.windowMs - this.opts.now();
    return left > 0 ? Math.ceil(left / 1000) : 0;
  }

  failed(address: string | undefined): void {
    const key = address ?? '';
    const now = this.opts.now();
    const window = this.#windows.get(key);
    if (!window || now >= window.start + this.opts.windowMs) this.#windows.set(key, { start: now, failures: 1 });
    else window.failures++;
  }
}

/** Failed logins (htpasswd, admin token) an address may have per minute before it must wait. */
export const loginFailureThrottle = (now: () => number) => new FailureThrottle({ limit: 5, windowMs: 60_000, now });
