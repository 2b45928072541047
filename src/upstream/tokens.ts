import { SingleFlight } from '../util/single-flight.js';

export interface IssuedToken {
  token: string;
  /** Epoch ms after which the token must not be used. */
  expiresAt: number;
}

export interface TokenCacheOptions {
  now: () => number;
  /** Tokens are dropped this long before they expire, capped at half their lifetime. */
  marginMs: number;
}

/** Lifetime assumed when the token service says nothing (Docker token spec default). */
export const DEFAULT_TOKEN_LIFETIME_MS = 60_000;

/**
 * Bearer tokens per (realm, service, scope), kept until shortly before they expire. One request per key
 * at a time: concurrent callers for the same scope share one token-service round trip.
 */
export class TokenCache {
  readonly #tokens = new Map<string, { token: string; usableUntil: number }>();
  readonly #flight = new SingleFlight<string, string>();
  readonly #opts: TokenCacheOptions;

  constructor(opts: TokenCacheOptions) {
    this.#opts = opts;
  }

  async get(key: TokenKey, issue: () => Promise<IssuedToken>): Promise<string> {
    const k = cacheKey(key);
    const cached = this.#tokens.get(k);
    if (cached && this.#opts.now() < cached.usableUntil) return cached.token;
    return this.#flight.run(k, async () => {
      const issuedAt = this.#opts.now();
      const t = await issue();
      const lifetime = Math.max(0, t.expiresAt - issuedAt);
      const margin = Math.min(this.#opts.marginMs, lifetime / 2);
      this.#tokens.set(k, { token: t.token, usableUntil: t.expiresAt - margin });
      return t.token;
    });
  }

  /** Drops a token the registry refused, unless a newer one has replaced it already. */
  invalidate(key: TokenKey, token: string): void {
    const k = cacheKey(key);
    if (this.#tokens.get(k)?.token === token) this.#tokens.delete(k);
  }

  get size(): number {
    return this.#tokens.size;
  }
}

export interface TokenKey {
  realm: string;
  service: string;
  scope: string;
}

function cacheKey(k: TokenKey): string {
  return `${k.realm}\n${k.service}\n${k.scope}`;
}

/**
 * Expiry of a token-service answer: issued_at + expires_in, else the JWT's exp claim, else the default.
 */
export function tokenExpiry(answer: { token: string; expires_in?: number; issued_at?: string }, now: number): number {
  if (typeof answer.expires_in === 'number' && answer.expires_in > 0) {
    const issued = answer.issued_at ? Date.parse(answer.issued_at) : NaN;
    const base = Number.isFinite(issued) && Math.abs(issued - now) < 300_000 ? issued : now;
    return base + answer.expires_in * 1000;
  }
  const exp = jwtExp(answer.token);
  if (exp !== null) return exp * 1000;
  return now + DEFAULT_TOKEN_LIFETIME_MS;
}

function jwtExp(token: string): number | null {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof claims.exp === 'number' ? claims.exp : null;
  } catch {
    return null;
  }
}
