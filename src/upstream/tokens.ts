import { LRUCache } from 'lru-cache';
import type { Credentials } from '../config/load.js';
import { RegistryError } from '../http/errors.js';
import type { UpstreamObserver } from '../observability/metrics.js';
import { SingleFlight } from '../util/single-flight.js';
import { type Arrival, discard, readCapped } from './answers.js';
import { type Challenge, parseChallenge } from './challenge.js';
import type { CredentialSource } from './credentials.js';
import { networkError } from './errors.js';
import type { RealmPolicy } from './realms.js';
import { RetryableError } from './retry.js';
import type { Fetch, UpstreamResponse } from './transport.js';

export interface IssuedToken {
  token: string;
  /** Epoch ms after which the token must not be used. */
  expiresAt: number;
}

export interface TokenCacheOptions {
  now: () => number;
  /** Tokens are dropped this long before they expire, capped at half their lifetime. */
  marginMs: number;
  /** Most tokens kept (one per repository scope); the least recently used go first. */
  maxEntries?: number;
}

/** Lifetime assumed when the token service says nothing (Docker token spec default). */
export const DEFAULT_TOKEN_LIFETIME_MS = 60_000;
export const DEFAULT_MAX_TOKENS = 1000;

/**
 * Bearer tokens per (realm, service, scope), kept until shortly before they expire, at most maxEntries of them
 * (a client asking for many names must not grow memory). One request per key at a time: concurrent callers for
 * the same scope share one token-service round trip.
 */
export class TokenCache {
  readonly #tokens: LRUCache<string, { token: string; usableUntil: number }>;
  readonly #flight = new SingleFlight<string, string>();
  readonly #opts: TokenCacheOptions;

  constructor(opts: TokenCacheOptions) {
    this.#opts = opts;
    this.#tokens = new LRUCache({ max: opts.maxEntries ?? DEFAULT_MAX_TOKENS, ttlResolution: 0, perf: { now: opts.now } });
  }

  async get(key: TokenKey, issue: () => Promise<IssuedToken>): Promise<string> {
    const k = cacheKey(key);
    const cached = this.#tokens.get(k);
    if (cached && this.#opts.now() < cached.usableUntil) return cached.token;
    return this.#flight.run(k, async () => {
      const issuedAt = this.#opts.now();
      const t = await issue();
      const lifetime = Math.max(0, t.expiresAt - issuedAt);
      const usableUntil = t.expiresAt - Math.min(this.#opts.marginMs, lifetime / 2);
      const ttl = usableUntil - this.#opts.now();
      if (ttl >= 1) this.#tokens.set(k, { token: t.token, usableUntil }, { ttl });
      return t.token;
    });
  }

  /** Drops a token the registry refused, unless a newer one has replaced it already. */
  invalidate(key: TokenKey, token: string): void {
    const k = cacheKey(key);
    if (this.#tokens.get(k)?.token === token) this.#tokens.delete(k);
  }

  get size(): number {
    this.#tokens.purgeStale();
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

export interface RegistryAuthDeps {
  fetch: Fetch;
  credentials: CredentialSource;
  tokens: TokenCache;
  realms: RealmPolicy;
  now: () => number;
  observer: UpstreamObserver;
  /** How messages name the upstream. */
  label: string;
}

type Authorization = { header: string; key?: TokenKey; token?: string } | null;

/** A successful token request proves the credentials for this long: a refused scope within it is not a bad login. */
const CREDENTIALS_PROVEN_MS = 60_000;

/**
 * Authenticates one upstream's requests: learns its challenge from the first 401 (Bearer or Basic), asks the token
 * service for a token per repository scope with the upstream's credentials (only at a realm the RealmPolicy allows),
 * and sends a request refused with 401 once more with a fresh token.
 */
export class RegistryAuth {
  readonly #deps: RegistryAuthDeps;
  /** undefined until the registry has answered a first 401 (or a 2xx without one: then null). */
  #challenge: Challenge | null | undefined;
  #proven: { credentials: Credentials | undefined; realm: string; at: number } | null = null;

  constructor(deps: RegistryAuthDeps) {
    this.#deps = deps;
  }

  /** Runs `send` with the current Authorization; on a registry 401, once more with freshly obtained authorization. */
  async exchange(repo: string, what: string, signal: AbortSignal | undefined, send: (authorization?: string) => Promise<Arrival>): Promise<Arrival> {
    const auth = await this.#authorization(repo, signal);
    const arrival = await send(auth?.header);
    if (arrival.response?.status !== 401 || arrival.redirected) {
      if (this.#challenge === undefined && (arrival.response?.status ?? 0) < 400) this.#challenge = null;
      return arrival;
    }
    const { label, tokens } = this.#deps;
    const challenge = parseChallenge(arrival.response.headers.get('www-authenticate'));
    await discard(arrival.response);
    if (!challenge) throw new RegistryError('UPSTREAM_AUTH_FAILED', `${label}: ${what} answered 401 without a usable WWW-Authenticate challenge`);
    if (auth?.key && auth.token) tokens.invalidate(auth.key, auth.token);
    this.#challenge = challenge;
    const fresh = await this.#authorization(repo, signal);
    if (!fresh) throw new RegistryError('UPSTREAM_AUTH_FAILED', `${label}: ${what} requires credentials and none are configured for this upstream`);
    const again = await send(fresh.header);
    if (again.response?.status === 401 && !again.redirected) {
      await discard(again.response);
      throw new RegistryError(
        'DENIED',
        `${label} refused ${what} ${auth ? 'with a freshly issued token' : 'after authenticating'}: the repository does not exist or the configured account may not pull it`,
      );
    }
    return again;
  }

  async #authorization(repo: string, signal?: AbortSignal): Promise<Authorization> {
    const challenge = this.#challenge;
    if (!challenge) return null;
    if (challenge.scheme === 'basic') {
      const credentials = await this.#deps.credentials.current();
      return credentials ? { header: basic(credentials) } : null;
    }
    const key: TokenKey = { realm: challenge.realm, service: challenge.service ?? '', scope: `repository:${repo}:pull` };
    const { observer } = this.#deps;
    const token = await this.#deps.tokens.get(key, () =>
      this.#issue(key, signal).then(
        (t) => {
          observer.token('ok');
          return t;
        },
        (err: unknown) => {
          observer.token('error');
          throw err;
        },
      ),
    );
    return { header: `Bearer ${token}`, key, token };
  }

  async #issue(key: TokenKey, signal?: AbortSignal): Promise<IssuedToken> {
    let realm: URL;
    try {
      realm = new URL(key.realm);
    } catch {
      throw new RegistryError('UPSTREAM_AUTH_FAILED', `${this.#deps.label}: token realm in the challenge is not a URL`);
    }
    const where = `${this.#deps.label}, token service ${realm.host}`;
    const credentials = await this.#deps.credentials.current();
    if (credentials) this.#deps.realms.check(realm, this.#deps.label);
    const res = await this.#request(realm, key, credentials, where, signal);
    if (res.status === 401 || res.status === 403) {
      await discard(res);
      const who = credentials ? `the credentials of user ${credentials.username}` : 'anonymous access';
      if (await this.#loginWorks(realm, key, credentials, where, signal)) {
        throw new RegistryError('DENIED', `${where} refused ${key.scope} to ${who} (${res.status}): the repository does not exist or the account may not pull it`);
      }
      this.#deps.credentials.refused();
      throw new RegistryError('UPSTREAM_AUTH_FAILED', `${where} rejected ${who} (${res.status})`);
    }
    if (res.status !== 200) {
      await discard(res);
      const err = new RegistryError('UPSTREAM_BAD_RESPONSE', `${where}: token request failed with ${res.status}`);
      if (res.status === 429 || res.status >= 500) throw new RetryableError(err);
      throw err;
    }
    const issued = await this.#parse(res, where);
    this.#proven = { credentials, realm: key.realm, at: this.#deps.now() };
    return issued;
  }

  /**
   * Whether the token service accepts the login itself (a request without a scope, as `docker login` sends): if so,
   * a refused scope is this repository's answer, not a reason to drop the credentials or to mark the upstream down.
   */
  async #loginWorks(realm: URL, key: TokenKey, credentials: Credentials | undefined, where: string, signal?: AbortSignal): Promise<boolean> {
    const proven = this.#proven;
    if (proven && proven.credentials === credentials && proven.realm === key.realm && this.#deps.now() - proven.at < CREDENTIALS_PROVEN_MS) return true;
    const res = await this.#request(realm, { ...key, scope: '' }, credentials, where, signal);
    await discard(res);
    if (res.status !== 200) return false;
    this.#proven = { credentials, realm: key.realm, at: this.#deps.now() };
    return true;
  }

  async #request(realm: URL, key: TokenKey, credentials: Credentials | undefined, where: string, signal?: AbortSignal): Promise<UpstreamResponse> {
    const url = new URL(realm);
    if (key.service) url.searchParams.set('service', key.service);
    if (key.scope) url.searchParams.set('scope', key.scope);
    const headers: Record<string, string> = { accept: 'application/json', ...(credentials ? { authorization: basic(credentials) } : {}) };
    try {
      return await this.#deps.fetch(url.href, { method: 'GET', headers, ...(signal ? { signal } : {}) });
    } catch (err) {
      throw new RetryableError(networkError(where, 'token request', err));
    }
  }

  async #parse(res: UpstreamResponse, where: string): Promise<IssuedToken> {
    let answer: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
    try {
      answer = JSON.parse((await readCapped(res, where, 'token request')).toString('utf8'));
    } catch (err) {
      if (!(err instanceof SyntaxError)) throw err;
      throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${where}: token answer is not JSON`);
    }
    const token = typeof answer.token === 'string' && answer.token ? answer.token : answer.access_token;
    if (typeof token !== 'string' || !token) throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${where}: token answer has no token`);
    const expiry = {
      token,
      ...(typeof answer.expires_in === 'number' ? { expires_in: answer.expires_in } : {}),
      ...(typeof answer.issued_at === 'string' ? { issued_at: answer.issued_at } : {}),
    };
    return { token, expiresAt: tokenExpiry(expiry, this.#deps.now()) };
  }
}

function basic({ username, password }: Credentials): string {
  return `Basic ${Buffer.from(`${username}:${password.reveal()}`).toString('base64')}`;
}
