export interface RetryPolicy {
  /** Extra attempts after the first. */
  retries: number;
  baseDelayMs: number;
  /** Longest wait between attempts; a Retry-After longer than this is not waited for. */
  maxDelayMs: number;
}

/** Thrown by an attempt that may succeed if tried again (network error, 429, 5xx). */
export class RetryableError extends Error {
  constructor(
    readonly final: Error,
    readonly retryAfterMs?: number,
  ) {
    super(final.message, { cause: final });
    this.name = 'RetryableError';
  }
}

export interface RetryDeps {
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  random: () => number;
  signal?: AbortSignal;
  onRetry?: (attempt: number, delayMs: number, reason: Error) => void;
}

/**
 * Runs attempt until it succeeds, throws a non-retryable error, or retries run out. Delays use exponential
 * backoff with full jitter; Retry-After (when given) is a lower bound. Out of retries, the attempt's final error
 * is thrown.
 */
export async function withRetries<T>(policy: RetryPolicy, deps: RetryDeps, attempt: (n: number) => Promise<T>): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      if (!(err instanceof RetryableError)) throw err;
      if (n >= policy.retries || deps.signal?.aborted) throw err.final;
      if (err.retryAfterMs !== undefined && err.retryAfterMs > policy.maxDelayMs) throw err.final;
      const backoff = deps.random() * Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** n);
      const delay = Math.max(backoff, err.retryAfterMs ?? 0);
      deps.onRetry?.(n + 1, delay, err.final);
      await deps.sleep(delay, deps.signal);
    }
  }
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
