import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { UpstreamConfig } from '../config/load.js';
import type { CircuitBreaker } from './breaker.js';
import type { CredentialSource } from './credentials.js';
import { RegistryError } from '../http/errors.js';
import { type Challenge, parseChallenge } from './challenge.js';
import { isNetworkError, networkError } from './errors.js';
import { RetryableError, parseRetryAfter, sleep, withRetries, type RetryPolicy } from './retry.js';
import { type IssuedToken, type TokenCache, type TokenKey, tokenExpiry } from './tokens.js';
import type { Fetch, FetchInit, UpstreamBody, UpstreamResponse } from './transport.js';
import { NO_OBSERVER, type UpstreamObserver } from '../observability/metrics.js';

/** Manifests larger than this are refused (Distribution's own limit is 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Failures that are answers: the upstream is up and said no. They do not count against the breaker. */
const ANSWERED = new Set(['MANIFEST_UNKNOWN', 'BLOB_UNKNOWN', 'NAME_UNKNOWN', 'DENIED']);

export interface ManifestAnswer {
  /** sha256 of the body for GET; the Docker-Content-Digest header for HEAD (null if absent). */
  digest: string | null;
  mediaType: string;
  size: number;
  body: Buffer | null;
}

export interface BlobAnswer {
  /** Byte offset in the blob at which body starts (the requested offset, or 0 if Range was ignored). */
  start: number;
  /** Size of the whole blob, when the upstream said. */
  size: number | null;
  body: UpstreamBody;
}

export interface TagPage {
  tags: string[];
  more: boolean;
}

export interface RegistryClientDeps {
  fetch: Fetch;
  breaker: CircuitBreaker;
  /** Never contact the upstream. */
  offline?: boolean;
  observer?: UpstreamObserver;
  credentials: CredentialSource;
  tokens: TokenCache;
  now: () => number;
  log: Logger;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
}

type Auth = { header: string; key?: TokenKey; token?: string } | null;

/**
 * Talks to one upstream registry as an authenticated, read-only client: answers the Bearer/Basic challenge,
 * follows blob redirects to object storage without the registry's credentials, retries what is idempotent.
 * Every failure is a RegistryError whose message names the upstream and what failed, never a secret.
 */
export class RegistryClient {
  readonly name: string;
  readonly baseUrl: string;
  readonly #host: string;
  readonly #deps: RegistryClientDeps;
  readonly #policy: RetryPolicy;
  readonly #maxRedirects: number;
  /** undefined until the registry has answered a first 401 (or a 2xx without one: then null). */
  #challenge: Challenge | null | undefined;

  constructor(upstream: UpstreamConfig, deps: RegistryClientDeps) {
    this.name = upstream.name;
    this.baseUrl = upstream.url;
    this.#host = new URL(upstream.url).host;
    this.#deps = deps;
    this.#policy = { retries: upstream.retries, baseDelayMs: 200, maxDelayMs: upstream.retry_max_delay };
    this.#maxRedirects = upstream.max_redirects;
  }

  /** "upstream acr (registry.example.com)": how messages name this upstream. */
  get label(): string {
    return `upstream ${this.name} (${this.#host})`;
  }

  async getManifest(repo: string, reference: string, accept: string[], signal?: AbortSignal): Promise<ManifestAnswer> {
    const what = `GET manifest ${repo}:${reference}`;
    return this.#withRetries(signal, async () => {
      const res = await this.#request(repo, `/v2/${repo}/manifests/${reference}`, what, { method: 'GET', headers: { accept: accept.join(', ') }, signal });
      if (res.status === 404) {
        await discard(res);
        throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} not found in ${repo} on ${this.label}`);
      }
      const body = await this.#readCapped(res, what);
      this.observer.received('manifest', body.length);
      return {
        digest: `sha256:${createHash('sha256').update(body).digest('hex')}`,
        mediaType: mediaTypeOf(res, body),
        size: body.length,
        body,
      };
    });
  }

  async headManifest(repo: string, reference: string, accept: string[], signal?: AbortSignal): Promise<ManifestAnswer> {
    const what = `HEAD manifest ${repo}:${reference}`;
    return this.#withRetries(signal, async () => {
      const res = await this.#request(repo, `/v2/${repo}/manifests/${reference}`, what, { method: 'HEAD', headers: { accept: accept.join(', ') }, signal });
      await discard(res);
      if (res.status === 404) throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} not found in ${repo} on ${this.label}`);
      return {
        digest: res.headers.get('docker-content-digest'),
        mediaType: res.headers.get('content-type') ?? '',
        size: Number(res.headers.get('content-length') ?? NaN),
        body: null,
      };
    });
  }

  /**
   * Opens the blob at offset. Every call asks the registry again, so an expired signed URL is never reused:
   * resuming after a broken transfer is just another call with the offset reached.
   */
  async openBlob(repo: string, digest: string, offset: number, signal?: AbortSignal): Promise<BlobAnswer> {
    const what = `GET blob ${repo}@${digest}`;
    const headers: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
    return this.#withRetries(signal, async () => {
      const res = await this.#request(repo, `/v2/${repo}/blobs/${digest}`, what, { method: 'GET', headers, signal });
      if (res.status === 404) {
        await discard(res);
        throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} not found in ${repo} on ${this.label}`);
      }
      if (!res.body) throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${this.label}: ${what} returned no body`);
      if (res.status === 206) {
        const range = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
        if (!range || Number(range[1]) !== offset) {
          await discard(res);
          throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${this.label}: ${what} answered a range other than the one asked for`);
        }
        return { start: offset, size: range[2] === '*' ? null : Number(range[2]), body: res.body };
      }
      const length = res.headers.get('content-length');
      return { start: 0, size: length === null ? null : Number(length), body: res.body };
    });
  }

  async headBlob(repo: string, digest: string, signal?: AbortSignal): Promise<{ size: number | null }> {
    const what = `HEAD blob ${repo}@${digest}`;
    return this.#withRetries(signal, async () => {
      const res = await this.#request(repo, `/v2/${repo}/blobs/${digest}`, what, { method: 'HEAD', headers: {}, signal });
      await discard(res);
      if (res.status === 404) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} not found in ${repo} on ${this.label}`);
      const length = res.headers.get('content-length');
      return { size: length === null ? null : Number(length) };
    });
  }

  async listTags(repo: string, page: { n?: number; last?: string }, signal?: AbortSignal): Promise<TagPage> {
    const what = `GET tags of ${repo}`;
    const q = new URLSearchParams();
    if (page.n !== undefined) q.set('n', String(page.n));
    if (page.last !== undefined) q.set('last', page.last);
    const path = `/v2/${repo}/tags/list${q.size ? `?${q}` : ''}`;
    return this.#withRetries(signal, async () => {
      const res = await this.#request(repo, path, what, { method: 'GET', headers: { accept: 'application/json' }, signal });
      if (res.status === 404) {
        await discard(res);
        throw new RegistryError('NAME_UNKNOWN', `repository ${repo} not found on ${this.label}`);
      }
      const body = await this.#readCapped(res, what);
      let tags: unknown;
      try {
        tags = (JSON.parse(body.toString('utf8')) as { tags?: unknown }).tags ?? [];
      } catch {
        throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${this.label}: ${what} returned invalid JSON`);
      }
      if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) {
        throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${this.label}: ${what} returned a malformed tag list`);
      }
      return { tags, more: /rel="?next"?/.test(res.headers.get('link') ?? '') };
    });
  }

  get observer(): UpstreamObserver {
    return this.#deps.observer ?? NO_OBSERVER;
  }

  /** Offline mode and the breaker first; then the exchange with retries; its outcome feeds the breaker. */
  async #withRetries<T>(signal: AbortSignal | undefined, attempt: () => Promise<T>): Promise<T> {
    if (this.#deps.offline) {
      throw new RegistryError('UPSTREAM_OFFLINE', `${this.label} is offline (offline = true): only cached content is served`);
    }
    const wait = this.#deps.breaker.blockedFor();
    if (wait > 0) {
      const seconds = Math.ceil(wait / 1000);
      throw new RegistryError('UPSTREAM_DOWN', `${this.label} is marked down after repeated failures; next attempt in ${seconds}s`, {
        headers: { 'retry-after': String(seconds) },
      });
    }
    try {
      const result = await this.#retrying(signal, attempt);
      this.#deps.breaker.success();
      return result;
    } catch (err) {
      if (err instanceof RegistryError && ANSWERED.has(err.kind)) {
        this.#deps.breaker.success();
      } else {
        if (err instanceof RegistryError) this.observer.error(err.kind.toLowerCase());
        if (!signal?.aborted) this.#deps.breaker.failure();
      }
      throw err;
    }
  }

  #retrying<T>(signal: AbortSignal | undefined, attempt: () => Promise<T>): Promise<T> {
    return withRetries(
      this.#policy,
      {
        sleep: this.#deps.sleep ?? sleep,
        random: this.#deps.random ?? Math.random,
        ...(signal ? { signal } : {}),
        onRetry: (n, delay, reason) =>
          this.#deps.log.warn({ attempt: n, delayMs: Math.round(delay), reason: reason.message }, 'retrying upstream request'),
      },
      attempt,
    );
  }

  /**
   * One authenticated exchange, redirects followed. Returns 2xx and 404 responses; throws RetryableError for
   * what may pass on a new attempt (network errors, 429, 5xx, object storage refusing an expired link) and
   * RegistryError for the rest.
   */
  async #request(repo: string, path: string, what: string, init: FetchInit): Promise<UpstreamResponse> {
    let auth = await this.#auth(repo, init.signal);
    let res = await this.#follow(this.baseUrl + path, what, withAuth(init, auth));
    if (res.response.status === 401 && !res.redirected) {
      const challenge = parseChallenge(res.response.headers.get('www-authenticate'));
      await discard(res.response);
      if (!challenge) throw new RegistryError('UPSTREAM_AUTH_FAILED', `${this.label}: ${what} answered 401 without a usable WWW-Authenticate challenge`);
      if (auth?.key && auth.token) this.#deps.tokens.invalidate(auth.key, auth.token);
      const hadAuth = auth !== null;
      this.#challenge = challenge;
      auth = await this.#auth(repo, init.signal);
      if (!auth) {
        throw new RegistryError('UPSTREAM_AUTH_FAILED', `${this.label}: ${what} requires credentials and none are configured for this upstream`);
      }
      res = await this.#follow(this.baseUrl + path, what, withAuth(init, auth));
      if (res.response.status === 401) {
        await discard(res.response);
        throw new RegistryError(
          'DENIED',
          `${this.label} refused ${what} ${hadAuth ? 'with a freshly issued token' : 'after authenticating'}: the repository does not exist or the configured account may not pull it`,
        );
      }
    } else if (this.#challenge === undefined && res.response.status < 400) {
      this.#challenge = null;
    }
    const { response, redirected, host } = res;
    const status = response.status;
    if ((status >= 200 && status < 300) || status === 404) return response;
    const source = redirected ? `${this.label}, blob storage ${host}` : this.label;
    const retryAfter = parseRetryAfter(response.headers.get('retry-after'), this.#deps.now());
    await discard(response);
    if (status === 429) {
      const err = new RegistryError('UPSTREAM_RATE_LIMITED', `${source}: ${what} was rate limited (429)`, retryAfterHeader(retryAfter));
      throw new RetryableError(err, retryAfter);
    }
    if (status >= 500) {
      const err = new RegistryError('UPSTREAM_BAD_RESPONSE', `${source}: ${what} failed with ${status}`, retryAfterHeader(retryAfter));
      throw new RetryableError(err, status === 503 ? retryAfter : undefined);
    }
    if (redirected && (status === 403 || status === 400)) {
      // Object storage refuses expired or mangled signed links with 403; asking the registry again signs anew.
      throw new RetryableError(new RegistryError('UPSTREAM_BAD_RESPONSE', `${source}: ${what}: blob storage refused the signed link (${status})`));
    }
    if (status === 403) throw new RegistryError('DENIED', `${source} denied ${what} (403)`);
    throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${source}: ${what} answered unexpected status ${status}`);
  }

  /** Sends the request and follows redirects itself; credentials never go to another origin. */
  async #follow(url: string, what: string, init: FetchInit): Promise<{ response: UpstreamResponse; redirected: boolean; host: string }> {
    let current = new URL(url);
    let headers = init.headers;
    for (let hop = 0; ; hop++) {
      let response: UpstreamResponse;
      try {
        response = await this.#deps.fetch(current.href, { ...init, headers });
      } catch (err) {
        const where = hop === 0 ? this.label : `${this.label}, blob storage ${current.host}`;
        if (init.signal?.aborted) throw networkError(where, what, init.signal.reason ?? err);
        if (!isNetworkError(err)) throw networkError(where, what, err);
        throw new RetryableError(networkError(where, what, err));
      }
      if (!REDIRECTS.has(response.status)) return { response, redirected: hop > 0, host: current.host };
      const location = response.headers.get('location');
      await discard(response);
      if (!location) throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${this.label}: ${what} redirected without a Location`);
      if (hop >= this.#maxRedirects) throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${this.label}: ${what} redirected more than ${this.#maxRedirects} times`);
      const next = new URL(location, current);
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${this.label}: ${what} redirected to an unsupported scheme ${next.protocol}`);
      }
      if (next.origin !== current.origin) headers = withoutAuthorization(headers);
      current = next;
    }
  }

  async #auth(repo: string, signal?: AbortSignal): Promise<Auth> {
    const challenge = this.#challenge;
    if (!challenge) return null;
    if (challenge.scheme === 'basic') {
      const credentials = await this.#deps.credentials.current();
      if (!credentials) return null;
      const { username, password } = credentials;
      return { header: `Basic ${Buffer.from(`${username}:${password.reveal()}`).toString('base64')}` };
    }
    const key: TokenKey = { realm: challenge.realm, service: challenge.service ?? '', scope: `repository:${repo}:pull` };
    const token = await this.#deps.tokens.get(key, () =>
      this.#issueToken(key, signal).then(
        (t) => {
          this.observer.token('ok');
          return t;
        },
        (err: unknown) => {
          this.observer.token('error');
          throw err;
        },
      ),
    );
    return { header: `Bearer ${token}`, key, token };
  }

  async #issueToken(key: TokenKey, signal?: AbortSignal): Promise<IssuedToken> {
    let realm: URL;
    try {
      realm = new URL(key.realm);
    } catch {
      throw new RegistryError('UPSTREAM_AUTH_FAILED', `${this.label}: token realm in the challenge is not a URL`);
    }
    const where = `${this.label}, token service ${realm.host}`;
    const credentials = await this.#deps.credentials.current();
    if (credentials && realm.protocol === 'http:' && this.baseUrl.startsWith('https:')) {
      throw new RegistryError('UPSTREAM_AUTH_FAILED', `${where}: refusing to send credentials to a plain-HTTP token realm`);
    }
    if (key.service) realm.searchParams.set('service', key.service);
    realm.searchParams.set('scope', key.scope);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (credentials) {
      const { username, password } = credentials;
      headers.authorization = `Basic ${Buffer.from(`${username}:${password.reveal()}`).toString('base64')}`;
    }
    let res: UpstreamResponse;
    try {
      res = await this.#deps.fetch(realm.href, { method: 'GET', headers, ...(signal ? { signal } : {}) });
    } catch (err) {
      throw new RetryableError(networkError(where, 'token request', err));
    }
    if (res.status === 401 || res.status === 403) {
      await discard(res);
      this.#deps.credentials.refused();
      const who = credentials ? `the credentials of user ${credentials.username}` : 'anonymous access';
      throw new RegistryError('UPSTREAM_AUTH_FAILED', `${where} rejected ${who} (${res.status})`);
    }
    if (res.status !== 200) {
      await discard(res);
      const err = new RegistryError('UPSTREAM_BAD_RESPONSE', `${where}: token request failed with ${res.status}`);
      if (res.status === 429 || res.status >= 500) throw new RetryableError(err);
      throw err;
    }
    let answer: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
    try {
      answer = JSON.parse((await this.#readCapped(res, 'token request')).toString('utf8'));
    } catch {
      throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${where}: token answer is not JSON`);
    }
    const token = typeof answer.token === 'string' && answer.token ? answer.token : answer.access_token;
    if (typeof token !== 'string' || !token) throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${where}: token answer has no token`);
    return {
      token,
      expiresAt: tokenExpiry(
        {
          token,
          ...(typeof answer.expires_in === 'number' ? { expires_in: answer.expires_in } : {}),
          ...(typeof answer.issued_at === 'string' ? { issued_at: answer.issued_at } : {}),
        },
        this.#deps.now(),
      ),
    };
  }

  async #readCapped(res: UpstreamResponse, what: string): Promise<Buffer> {
    const declared = Number(res.headers.get('content-length') ?? 0);
    if (declared > MAX_MANIFEST_BYTES) {
      await discard(res);
      throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${this.label}: ${what}: response of ${declared} bytes exceeds the ${MAX_MANIFEST_BYTES} byte limit`);
    }
    const chunks: Buffer[] = [];
    let total = 0;
    try {
      for await (const chunk of res.body ?? []) {
        total += chunk.byteLength;
        if (total > MAX_MANIFEST_BYTES) {
          await discard(res);
          throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${this.label}: ${what}: response exceeds the ${MAX_MANIFEST_BYTES} byte limit`);
        }
        chunks.push(Buffer.from(chunk));
      }
    } catch (err) {
      if (err instanceof RegistryError) throw err;
      if (isNetworkError(err)) throw new RetryableError(networkError(this.label, what, err));
      throw err;
    }
    return Buffer.concat(chunks);
  }
}

function withAuth(init: FetchInit, auth: Auth): FetchInit {
  return auth ? { ...init, headers: { ...init.headers, authorization: auth.header } } : init;
}

function withoutAuthorization(headers: Record<string, string>): Record<string, string> {
  const { authorization: _dropped, ...rest } = headers;
  return rest;
}

function retryAfterHeader(ms: number | undefined): { headers?: Record<string, string> } {
  return ms === undefined ? {} : { headers: { 'retry-after': String(Math.ceil(ms / 1000)) } };
}

/** The media type of a manifest: Content-Type, else the mediaType field in the body. */
function mediaTypeOf(res: UpstreamResponse, body: Buffer): string {
  const header = res.headers.get('content-type')?.split(';')[0]?.trim();
  if (header && header !== 'application/octet-stream' && header !== 'text/plain') return header;
  try {
    const mt = (JSON.parse(body.toString('utf8')) as { mediaType?: unknown }).mediaType;
    if (typeof mt === 'string') return mt;
  } catch {
    // fall through
  }
  return header ?? 'application/octet-stream';
}

export async function discard(res: UpstreamResponse): Promise<void> {
  try {
    await res.body?.cancel();
  } catch {
    // the connection is gone already
  }
}
