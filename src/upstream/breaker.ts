/**
 * Per-upstream circuit breaker. After `threshold` consecutive failed exchanges the upstream is treated as down
 * for a cool-down that doubles on each failed probe (capped), so requests are answered from the cache at once
 * instead of each waiting out timeouts. After the cool-down one request goes through as a probe; its success
 * closes the breaker.
 */
export interface BreakerOptions {
  threshold: number;
  cooldownMs: number;
  maxCooldownMs: number;
  now: () => number;
  onChange?: (up: boolean, detail: { failures: number; retryInMs: number }) => void;
}

/** closed: requests go through; open: refused until retryAt; half-open: the one probe is running. */
export interface BreakerStatus {
  state: 'closed' | 'open' | 'half-open';
  /** Consecutive failed exchanges. */
  failures: number;
  /** When the next request may go through as the probe (open), else null. */
  retryAt: number | null;
}

export class CircuitBreaker {
  #failures = 0;
  #openUntil = 0;
  #cooldown: number;
  #probing = false;

  constructor(private readonly opts: BreakerOptions) {
    this.#cooldown = opts.cooldownMs;
  }

  get up(): boolean {
    return this.#failures < this.opts.threshold;
  }

  status(): BreakerStatus {
    if (this.up) return { state: 'closed', failures: this.#failures, retryAt: null };
    if (this.#probing) return { state: 'half-open', failures: this.#failures, retryAt: null };
    return { state: 'open', failures: this.#failures, retryAt: this.#openUntil };
  }

  /** Milliseconds until a request may go through, or 0 if one may now (possibly as the single probe). */
  blockedFor(): number {
    if (this.up) return 0;
    const wait = this.#openUntil - this.opts.now();
    if (wait > 0 || this.#probing) return Math.max(wait, 1);
    this.#probing = true;
    return 0;
  }

  success(): void {
    const wasDown = !this.up;
    this.#failures = 0;
    this.#probing = false;
    this.#cooldown = this.opts.cooldownMs;
    if (wasDown) this.opts.onChange?.(true, { failures: 0, retryInMs: 0 });
  }

  failure(): void {
    const wasUp = this.up;
    this.#failures++;
    if (this.up) return;
    if (!wasUp) this.#cooldown = Math.min(this.#cooldown * 2, this.opts.maxCooldownMs);
    this.#probing = false;
    this.#openUntil = this.opts.now() + this.#cooldown;
    if (wasUp) this.opts.onChange?.(false, { failures: this.#failures, retryInMs: this.#cooldown });
  }
}
