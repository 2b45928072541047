import { describe, expect, it } from 'vitest';
import { CircuitBreaker } from '../../src/upstream/breaker.js';

function breaker() {
  let now = 0;
  const changes: [boolean, number][] = [];
  const b = new CircuitBreaker({ threshold: 3, cooldownMs: 1000, maxCooldownMs: 4000, now: () => now, onChange: (up, d) => changes.push([up, d.retryInMs]) });
  return { b, changes, advance: (ms: number) => (now += ms) };
}

describe('CircuitBreaker', () => {
  it('opens after threshold consecutive failures, and a success in between resets the count', () => {
    const { b, changes } = breaker();
    b.failure();
    b.failure();
    b.success();
    b.failure();
    b.failure();
    expect(b.up).toBe(true);
    expect(b.blockedFor()).toBe(0);
    b.failure();
    expect(b.up).toBe(false);
    expect(b.blockedFor()).toBe(1000);
    expect(changes).toEqual([[false, 1000]]);
  });

  it('lets one probe through after the cool-down; a failed probe doubles the cool-down up to the cap', () => {
    const { b, changes, advance } = breaker();
    for (let i = 0; i < 3; i++) b.failure();
    advance(1000);
    expect(b.blockedFor()).toBe(0); // the probe
    expect(b.blockedFor()).toBeGreaterThan(0); // others wait while it runs
    b.failure();
    expect(b.blockedFor()).toBe(2000);
    advance(2000);
    expect(b.blockedFor()).toBe(0);
    b.failure();
    expect(b.blockedFor()).toBe(4000);
    advance(4000);
    b.blockedFor();
    b.failure();
    expect(b.blockedFor()).toBe(4000);
    expect(changes).toEqual([[false, 1000]]); // one line when it goes down, not one per failed probe
  });

  it('a successful probe closes it and resets the cool-down', () => {
    const { b, changes, advance } = breaker();
    for (let i = 0; i < 3; i++) b.failure();
    advance(1000);
    expect(b.blockedFor()).toBe(0);
    b.success();
    expect(b.up).toBe(true);
    expect(changes).toEqual([[false, 1000], [true, 0]]);
    for (let i = 0; i < 3; i++) b.failure();
    expect(b.blockedFor()).toBe(1000);
  });

  it('reports its state, failure count and when the next probe may go (the admin page shows it)', () => {
    const { b, advance } = breaker();
    b.failure();
    expect(b.status()).toEqual({ state: 'closed', failures: 1, retryAt: null });
    b.failure();
    b.failure();
    expect(b.status()).toEqual({ state: 'open', failures: 3, retryAt: 1000 });
    advance(1000);
    expect(b.blockedFor()).toBe(0);
    expect(b.status()).toEqual({ state: 'half-open', failures: 3, retryAt: null });
    b.failure();
    expect(b.status()).toEqual({ state: 'open', failures: 4, retryAt: 3000 });
    advance(2000);
    b.blockedFor();
    b.success();
    expect(b.status()).toEqual({ state: 'closed', failures: 0, retryAt: null });
  });
});
