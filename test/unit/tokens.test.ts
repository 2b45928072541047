import { describe, expect, it, vi } from 'vitest';
import { DEFAULT_MAX_TOKENS, DEFAULT_TOKEN_LIFETIME_MS, TokenCache, tokenExpiry, type IssuedToken, type TokenKey } from '../../src/upstream/tokens.js';

const KEY: TokenKey = { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull' };

function clock(start = 1_700_000_000_000) {
  let t = start;
  return {
    now: () => t,
    advance(ms: number) {
      t += ms;
    },
    set(ms: number) {
      t = ms;
    },
  };
}

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** An issue() that hands out tok-1, tok-2, ... each valid for lifetimeMs from the clock's current time. */
function issuer(c: { now: () => number }, lifetimeMs: number) {
  let n = 0;
  return vi.fn(async (): Promise<IssuedToken> => {
    n++;
    return { token: `tok-${n}`, expiresAt: c.now() + lifetimeMs };
  });
}

describe('TokenCache', () => {
  it('caches a token per (realm, service, scope)', async () => {
    const c = clock();
    const cache = new TokenCache({ now: c.now, marginMs: 30_000 });
    const issue = issuer(c, 300_000);
    expect(await cache.get(KEY, issue)).toBe('tok-1');
    expect(await cache.get({ ...KEY }, issue)).toBe('tok-1');
    expect(issue).toHaveBeenCalledTimes(1);
    expect(cache.size).toBe(1);
  });

  it.each([
    ['scope', { ...KEY, scope: 'repository:a/c:pull' }],
    ['service', { ...KEY, service: 'other.example' }],
    ['realm', { ...KEY, realm: 'https://auth2.example/token' }],
  ])('issues a new token when the %s differs', async (_label, other) => {
    const c = clock();
    const cache = new TokenCache({ now: c.now, marginMs: 30_000 });
    const issue = issuer(c, 300_000);
    expect(await cache.get(KEY, issue)).toBe('tok-1');
    expect(await cache.get(other, issue)).toBe('tok-2');
    expect(issue).toHaveBeenCalledTimes(2);
    // Both stay cached independently.
    expect(await cache.get(KEY, issue)).toBe('tok-1');
    expect(await cache.get(other, issue)).toBe('tok-2');
    expect(issue).toHaveBeenCalledTimes(2);
    expect(cache.size).toBe(2);
  });

  it('does not confuse keys whose parts concatenate to the same string', async () => {
    const c = clock();
    const cache = new TokenCache({ now: c.now, marginMs: 0 });
    const issue = issuer(c, 300_000);
    await cache.get({ realm: 'r', service: 'ab', scope: 'c' }, issue);
    expect(await cache.get({ realm: 'r', service: 'a', scope: 'bc' }, issue)).toBe('tok-2');
  });

  it('reuses a token until expiresAt - margin, then issues a new one', async () => {
    const c = clock();
    const cache = new TokenCache({ now: c.now, marginMs: 30_000 });
    const issue = issuer(c, 300_000); // expires at start + 300 s, usable until start + 270 s
    expect(await cache.get(KEY, issue)).toBe('tok-1');
    c.advance(270_000 - 1);
    expect(await cache.get(KEY, issue)).toBe('tok-1');
    expect(issue).toHaveBeenCalledTimes(1);
    c.advance(1);
    expect(await cache.get(KEY, issue)).toBe('tok-2');
    expect(issue).toHaveBeenCalledTimes(2);
  });

  it('caps the margin at half the token lifetime', async () => {
    const c = clock();
    const cache = new TokenCache({ now: c.now, marginMs: 30_000 });
    const issue = issuer(c, 20_000); // margin would swallow it; capped to 10 s -> usable for 10 s
    expect(await cache.get(KEY, issue)).toBe('tok-1');
    c.advance(9_999);
    expect(await cache.get(KEY, issue)).toBe('tok-1');
    expect(issue).toHaveBeenCalledTimes(1);
    c.advance(1);
    expect(await cache.get(KEY, issue)).toBe('tok-2');
  });

  it('measures the lifetime from when issuing started, not from when it finished', async () => {
    const c = clock();
    const cache = new TokenCache({ now: c.now, marginMs: 30_000 });
    const start = c.now();
    // The token service takes 5 s to answer; the token expires 20 s after the request started.
    const issue = vi.fn(async () => {
      c.advance(5_000);
      return { token: 'slow', expiresAt: start + 20_000 };
    });
    await cache.get(KEY, issue);
    // lifetime 20 s -> margin 10 s -> usable until start + 10 s
    c.set(start + 9_999);
    expect(await cache.get(KEY, issue)).toBe('slow');
    expect(issue).toHaveBeenCalledTimes(1);
    c.set(start + 10_000);
    await cache.get(KEY, issue);
    expect(issue).toHaveBeenCalledTimes(2);
  });

  it('never reuses an already-expired token', async () => {
    const c = clock();
    const cache = new TokenCache({ now: c.now, marginMs: 30_000 });
    let n = 0;
    const issue = vi.fn(async () => ({ token: `t${++n}`, expiresAt: c.now() - 1 }));
    expect(await cache.get(KEY, issue)).toBe('t1');
    expect(await cache.get(KEY, issue)).toBe('t2');
  });

  it('shares one issue() call among concurrent callers for the same key', async () => {
    const c = clock();
    const cache = new TokenCache({ now: c.now, marginMs: 30_000 });
    const d = deferred<IssuedToken>();
    const issue = vi.fn(() => d.promise);
    const waiters = [cache.get(KEY, issue), cache.get(KEY, issue), cache.get({ ...KEY }, issue)];
    expect(issue).toHaveBeenCalledTimes(1);
    d.resolve({ token: 'shared', expiresAt: c.now() + 300_000 });
    expect(await Promise.all(waiters)).toEqual(['shared', 'shared', 'shared']);
    expect(await cache.get(KEY, issue)).toBe('shared');
    expect(issue).toHaveBeenCalledTimes(1);
  });

  it('does not share an in-flight issue() between different keys', async () => {
    const c = clock();
    const cache = new TokenCache({ now: c.now, marginMs: 30_000 });
    const d1 = deferred<IssuedToken>();
    const d2 = deferred<IssuedToken>();
    const issue1 = vi.fn(() => d1.promise);
    const issue2 = vi.fn(() => d2.promise);
    const a = cache.get(KEY, issue1);
    const b = cache.get({ ...KEY, scope: 'repository:x:pull' }, issue2);
    expect(issue1).toHaveBeenCalledTimes(1);
    expect(issue2).toHaveBeenCalledTimes(1);
    d2.resolve({ token: 'two', expiresAt: c.now() + 300_000 });
    d1.resolve({ token: 'one', expiresAt: c.now() + 300_000 });
    expect(await a).toBe('one');
    expect(await b).toBe('two');
  });

  it('rejects every waiter when issue() fails, and tries again on the next get()', async () => {
    const c = clock();
    const cache = new TokenCache({ now: c.now, marginMs: 30_000 });
    const d = deferred<IssuedToken>();
    const failing = vi.fn(() => d.promise);
    const waiters = [cache.get(KEY, failing), cache.get(KEY, failing)];
    const settled = Promise.allSettled(waiters);
    d.reject(new Error('token service down'));
    const results = await settled;
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    for (const r of results) expect((r as PromiseRejectedResult).reason).toMatchObject({ message: 'token service down' });
    expect(failing).toHaveBeenCalledTimes(1);
    expect(cache.size).toBe(0);

    const ok = vi.fn(async () => ({ token: 'recovered', expiresAt: c.now() + 300_000 }));
    expect(await cache.get(KEY, ok)).toBe('recovered');
    expect(ok).toHaveBeenCalledTimes(1);
  });

  it('invalidate() drops the matching token so the next get() issues a new one', async () => {
    const c = clock();
    const cache = new TokenCache({ now: c.now, marginMs: 30_000 });
    const issue = issuer(c, 300_000);
    expect(await cache.get(KEY, issue)).toBe('tok-1');
    cache.invalidate({ ...KEY }, 'tok-1');
    expect(cache.size).toBe(0);
    expect(await cache.get(KEY, issue)).toBe('tok-2');
  });

  it('invalidate() with a stale token keeps the newer one', async () => {
    const c = clock();
    const cache = new TokenCache({ now: c.now, marginMs: 30_000 });
    const issue = issuer(c, 300_000);
    await cache.get(KEY, issue);
    cache.invalidate(KEY, 'tok-1');
    expect(await cache.get(KEY, issue)).toBe('tok-2');
    // A request that used tok-1 fails late and reports it: tok-2 must survive.
    cache.invalidate(KEY, 'tok-1');
    expect(await cache.get(KEY, issue)).toBe('tok-2');
    expect(issue).toHaveBeenCalledTimes(2);
  });

  it('invalidate() for one key leaves other keys alone', async () => {
    const c = clock();
    const cache = new TokenCache({ now: c.now, marginMs: 30_000 });
    const other = { ...KEY, scope: 'repository:other:pull' };
    const same = vi.fn(async () => ({ token: 'same-token', expiresAt: c.now() + 300_000 }));
    await cache.get(KEY, same);
    await cache.get(other, same);
    cache.invalidate(KEY, 'same-token');
    expect(cache.size).toBe(1);
    await cache.get(other, same);
    expect(same).toHaveBeenCalledTimes(2);
  });
});

function jwt(claims: Record<string, unknown>): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64(claims)}.c2lnbmF0dXJl`;
}

describe('TokenCache bounds', () => {
  const key = (i: number): TokenKey => ({ ...KEY, scope: `repository:random/name${i}:pull` });

  it('keeps at most maxEntries tokens, dropping the least recently used', async () => {
    const c = clock();
    const cache = new TokenCache({ now: c.now, marginMs: 30_000, maxEntries: 3 });
    const issue = issuer(c, 300_000);
    for (let i = 1; i <= 3; i++) await cache.get(key(i), issue);
    await cache.get(key(1), issue); // used again: name2 is now the least recently used
    for (let i = 4; i <= 10; i++) await cache.get(key(i), issue);
    expect(cache.size).toBe(3);
    expect(await cache.get(key(10), issue)).toBe('tok-10');
    expect(issue).toHaveBeenCalledTimes(10);
    expect(await cache.get(key(2), issue)).toBe('tok-11');
  });

  it('has a default bound', async () => {
    const c = clock();
    const cache = new TokenCache({ now: c.now, marginMs: 30_000 });
    const issue = issuer(c, 300_000);
    for (let i = 0; i < DEFAULT_MAX_TOKENS + 50; i++) await cache.get(key(i), issue);
    expect(cache.size).toBe(DEFAULT_MAX_TOKENS);
  });

  it('forgets tokens once they are no longer usable', async () => {
    const c = clock();
    const cache = new TokenCache({ now: c.now, marginMs: 30_000 });
    const issue = issuer(c, 300_000);
    for (let i = 0; i < 5; i++) await cache.get(key(i), issue);
    expect(cache.size).toBe(5);
    c.advance(270_001);
    expect(cache.size).toBe(0);
  });
});

describe('tokenExpiry', () => {
  const now = Date.parse('2024-05-01T12:00:00Z');

  it('uses issued_at + expires_in', () => {
    expect(tokenExpiry({ token: 'x', expires_in: 300, issued_at: '2024-05-01T11:59:58Z' }, now)).toBe(now - 2_000 + 300_000);
  });

  it('uses local now + expires_in when issued_at is missing', () => {
    expect(tokenExpiry({ token: 'x', expires_in: 300 }, now)).toBe(now + 300_000);
  });

  it.each([
    ['an hour ahead', '2024-05-01T13:00:00Z'],
    ['a year behind', '2023-05-01T12:00:00Z'],
    ['unparseable', 'not a date'],
  ])('uses local now when issued_at is %s', (_label, issued_at) => {
    expect(tokenExpiry({ token: 'x', expires_in: 300, issued_at }, now)).toBe(now + 300_000);
  });

  it('prefers expires_in over the JWT exp claim', () => {
    const token = jwt({ exp: now / 1000 + 10_000 });
    expect(tokenExpiry({ token, expires_in: 60 }, now)).toBe(now + 60_000);
  });

  it('uses the JWT exp claim when expires_in is absent', () => {
    const exp = Math.floor(now / 1000) + 900;
    expect(tokenExpiry({ token: jwt({ exp, sub: 'u', iss: 'dockerauth' }) }, now)).toBe(exp * 1000);
  });

  it('uses the JWT exp claim when expires_in is zero or negative', () => {
    const exp = Math.floor(now / 1000) + 900;
    expect(tokenExpiry({ token: jwt({ exp }), expires_in: 0 }, now)).toBe(exp * 1000);
    expect(tokenExpiry({ token: jwt({ exp }), expires_in: -5 }, now)).toBe(exp * 1000);
  });

  it('decodes a JWT payload that needs base64url characters', () => {
    // A claim value chosen so the payload's base64 contains "-" or "_".
    const exp = Math.floor(now / 1000) + 1234;
    const token = jwt({ exp, note: '>>>???~~~' });
    expect(token.split('.')[1]).toMatch(/[-_]/);
    expect(tokenExpiry({ token }, now)).toBe(exp * 1000);
  });

  it.each([
    ['an opaque token', 'opaque-token-value'],
    ['a JWT without exp', jwt({ sub: 'u' })],
    ['a JWT with a string exp', jwt({ exp: '1714568400' })],
    ['a JWT with an undecodable payload', 'aaa.!!!.ccc'],
    ['two segments', 'aaa.bbb'],
  ])('defaults to 60 s for %s', (_label, token) => {
    expect(tokenExpiry({ token }, now)).toBe(now + DEFAULT_TOKEN_LIFETIME_MS);
    expect(DEFAULT_TOKEN_LIFETIME_MS).toBe(60_000);
  });
});
