// The small helpers behind the operator's log lines and config messages: one line per cause per window, and the
// "did you mean" of a mistyped config key.
import { describe, expect, it } from 'vitest';
import { closestMatch, editDistance } from '../../src/util/closest.js';
import { OncePerWindow } from '../../src/util/once-per-window.js';

describe('OncePerWindow', () => {
  it('lets the first event of a key through, holds back the rest of its window, then says how many it held', () => {
    let clock = 1_000;
    const limiter = new OncePerWindow(60_000, () => clock);
    expect(limiter.admit('acr UPSTREAM_TIMEOUT')).toBe(0);
    expect(limiter.admit('acr UPSTREAM_TIMEOUT')).toBeNull();
    clock += 59_999;
    expect(limiter.admit('acr UPSTREAM_TIMEOUT')).toBeNull();
    clock += 1;
    expect(limiter.admit('acr UPSTREAM_TIMEOUT')).toBe(2);
    expect(limiter.admit('acr UPSTREAM_TIMEOUT')).toBeNull();
    clock += 60_000;
    expect(limiter.admit('acr UPSTREAM_TIMEOUT')).toBe(1);
  });

  it('keeps a window per key', () => {
    const limiter = new OncePerWindow(60_000, () => 0);
    expect(limiter.admit('acr UPSTREAM_TIMEOUT')).toBe(0);
    expect(limiter.admit('acr UPSTREAM_AUTH_FAILED')).toBe(0);
    expect(limiter.admit('other UPSTREAM_TIMEOUT')).toBe(0);
    expect(limiter.admit('acr UPSTREAM_AUTH_FAILED')).toBeNull();
  });
});

describe('closestMatch', () => {
  const KEYS = ['listen', 'tls_listen', 'tls_cert', 'tls_key', 'shutdown_timeout', 'max_connections', 'headers_timeout', 'request_timeout'];
  it.each([
    ['lisen', 'listen'],
    ['Listen', 'listen'],
    ['listne', 'listen'],
    ['tls_crt', 'tls_cert'],
    ['tls-key', 'tls_key'],
    ['max_conections', 'max_connections'],
    ['shutdown_timout', 'shutdown_timeout'],
    ['header_timeout', 'headers_timeout'],
    ['request_timeouts', 'request_timeout'],
    ['bogus', undefined],
    ['port', undefined],
    ['timeout', undefined],
    ['l', undefined],
  ])('%s -> %s', (word, expected) => {
    expect(closestMatch(word, KEYS)).toBe(expected);
  });

  it('prefers the nearest candidate', () => {
    expect(closestMatch('conect_timeout', ['connect_timeout', 'idle_timeout', 'fill_timeout'])).toBe('connect_timeout');
    expect(closestMatch('prefech', ['prefetch', 'prefetch_concurrency'])).toBe('prefetch');
  });

  it.each([
    ['', '', 0],
    ['abc', '', 3],
    ['kitten', 'sitting', 3],
    ['ab', 'ba', 1],
    ['listen', 'listen', 0],
  ])('editDistance(%s, %s) = %i', (a, b, d) => {
    expect(editDistance(a, b)).toBe(d);
  });
});
