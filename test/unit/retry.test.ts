import { describe, expect, it, vi } from 'vitest';
import { parseRetryAfter, RetryableError, withRetries, type RetryPolicy } from '../../src/upstream/retry.js';

const POLICY: RetryPolicy = { retries: 3, baseDelayMs: 100, maxDelayMs: 10_000 };

function deps(random: () => number = () => 0.5) {
  const delays: number[] = [];
  const retries: [number, number, string][] = [];
  return {
    delays,
    retries,
    deps: {
      sleep: vi.fn(async (ms: number) => {
        delays.push(ms);
      }),
      random,
      onRetry: (attempt: number, delayMs: number, reason: Error) => {
        retries.push([attempt, delayMs, reason.message]);
      },
    },
  };
}

/** An attempt function that throws the given errors in order, then returns 'ok'. */
function attempts(errors: Error[]) {
  const calls: number[] = [];
  const fn = vi.fn(async (n: number) => {
    calls.push(n);
    const e = errors[calls.length - 1];
    if (e) throw e;
    return 'ok';
  });
  return { fn, calls };
}

const retryable = (msg: string, retryAfterMs?: number) => new RetryableError(new Error(msg), retryAfterMs);

describe('withRetries', () => {
  it('returns the first result without sleeping when the first attempt succeeds', async () => {
    const d = deps();
    const { fn } = attempts([]);
    expect(await withRetries(POLICY, d.deps, fn)).toBe('ok');
    expect(fn).toHaveBeenCalledTimes(1);
    expect(d.delays).toEqual([]);
  });

  it('succeeds after N retryable failures, passing the attempt number', async () => {
    const d = deps();
    const { fn, calls } = attempts([retryable('e0'), retryable('e1'), retryable('e2')]);
    expect(await withRetries(POLICY, d.deps, fn)).toBe('ok');
    expect(calls).toEqual([0, 1, 2, 3]);
    expect(d.delays).toHaveLength(3);
    expect(d.retries.map(([attempt, , msg]) => [attempt, msg])).toEqual([
      [1, 'e0'],
      [2, 'e1'],
      [3, 'e2'],
    ]);
    // onRetry reports the delay that is actually slept.
    expect(d.retries.map(([, delay]) => delay)).toEqual(d.delays);
  });

  it('gives up after policy.retries extra attempts and throws the final (inner) error', async () => {
    const d = deps();
    const finals = [new Error('f0'), new Error('f1'), new Error('f2'), new Error('f3'), new Error('f4')];
    const { fn } = attempts(finals.map((f) => new RetryableError(f)));
    const p = withRetries(POLICY, d.deps, fn);
    await expect(p).rejects.toBe(finals[3]);
    await p.catch((e: unknown) => expect(e).not.toBeInstanceOf(RetryableError));
    expect(fn).toHaveBeenCalledTimes(POLICY.retries + 1);
    expect(d.delays).toHaveLength(POLICY.retries);
  });

  it('with retries = 0 makes exactly one attempt', async () => {
    const d = deps();
    const final = new Error('only');
    const { fn } = attempts([new RetryableError(final)]);
    await expect(withRetries({ ...POLICY, retries: 0 }, d.deps, fn)).rejects.toBe(final);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(d.delays).toEqual([]);
  });

  it('propagates a non-retryable error at once', async () => {
    const d = deps();
    const fatal = new TypeError('bad request');
    const { fn } = attempts([retryable('transient'), fatal, retryable('never reached')]);
    await expect(withRetries(POLICY, d.deps, fn)).rejects.toBe(fatal);
    expect(fn).toHaveBeenCalledTimes(2);
    expect(d.delays).toHaveLength(1);
  });

  it('propagates a non-retryable first error without sleeping', async () => {
    const d = deps();
    const fatal = new Error('404');
    const { fn } = attempts([fatal]);
    await expect(withRetries(POLICY, d.deps, fn)).rejects.toBe(fatal);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(d.delays).toEqual([]);
  });

  it('treats Retry-After as a lower bound on the delay', async () => {
    const d = deps(() => 0); // jitter picks 0 ms
    const { fn } = attempts([retryable('429', 2_500)]);
    expect(await withRetries(POLICY, d.deps, fn)).toBe('ok');
    expect(d.delays).toEqual([2_500]);
  });

  it('keeps the backoff when it is longer than Retry-After', async () => {
    const d = deps(() => 1);
    const { fn } = attempts([retryable('a'), retryable('b'), retryable('c'), retryable('503', 1)]);
    expect(await withRetries({ ...POLICY, retries: 4 }, d.deps, fn)).toBe('ok');
    // attempt n=3: backoff = 100 * 2^3 = 800 > Retry-After of 1 ms
    expect(d.delays[3]).toBe(800);
  });

  it('fails immediately without sleeping when Retry-After exceeds maxDelayMs', async () => {
    const d = deps();
    const final = new Error('429 Too Many Requests');
    const { fn } = attempts([new RetryableError(final, POLICY.maxDelayMs + 1)]);
    await expect(withRetries(POLICY, d.deps, fn)).rejects.toBe(final);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(d.deps.sleep).not.toHaveBeenCalled();
  });

  it('waits for a Retry-After exactly equal to maxDelayMs', async () => {
    const d = deps(() => 0);
    const { fn } = attempts([retryable('429', POLICY.maxDelayMs)]);
    expect(await withRetries(POLICY, d.deps, fn)).toBe('ok');
    expect(d.delays).toEqual([POLICY.maxDelayMs]);
  });

  it('grows the backoff exponentially and caps it at maxDelayMs', async () => {
    const d = deps(() => 1);
    const policy: RetryPolicy = { retries: 8, baseDelayMs: 100, maxDelayMs: 5_000 };
    const { fn } = attempts(Array.from({ length: 8 }, (_, i) => retryable(`e${i}`)));
    expect(await withRetries(policy, d.deps, fn)).toBe('ok');
    expect(d.delays).toEqual([100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000]);
  });

  it('applies full jitter: the delay is random() times the backoff', async () => {
    const d = deps(() => 0.25);
    const { fn } = attempts([retryable('a'), retryable('b')]);
    await withRetries(POLICY, d.deps, fn);
    expect(d.delays).toEqual([25, 50]);
  });

  it('stops retrying once the signal is aborted, throwing the final error', async () => {
    const ac = new AbortController();
    const d = deps();
    const final = new Error('reset');
    const fn = vi.fn(async () => {
      ac.abort();
      throw new RetryableError(final);
    });
    await expect(withRetries(POLICY, { ...d.deps, signal: ac.signal }, fn)).rejects.toBe(final);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(d.delays).toEqual([]);
  });

  it('passes the signal to sleep', async () => {
    const ac = new AbortController();
    const d = deps();
    const { fn } = attempts([retryable('a')]);
    await withRetries(POLICY, { ...d.deps, signal: ac.signal }, fn);
    expect(d.deps.sleep).toHaveBeenCalledWith(expect.any(Number), ac.signal);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2024-05-01T12:00:00Z');

  it.each([
    ['0', 0],
    ['1', 1_000],
    ['120', 120_000],
    [' 30 ', 30_000],
  ])('parses delta-seconds %j', (value, ms) => {
    expect(parseRetryAfter(value, now)).toBe(ms);
  });

  it('parses an HTTP date in the future', () => {
    expect(parseRetryAfter('Wed, 01 May 2024 12:00:45 GMT', now)).toBe(45_000);
  });

  it('clamps an HTTP date in the past to 0', () => {
    expect(parseRetryAfter('Wed, 01 May 2024 11:00:00 GMT', now)).toBe(0);
  });

  it.each([
    ['null', null],
    ['empty', ''],
    ['garbage', 'soon'],
    ['words', 'in five minutes'],
  ])('returns undefined for %s', (_label, value) => {
    expect(parseRetryAfter(value, now)).toBeUndefined();
  });
});
