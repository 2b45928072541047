import type { Logger } from 'pino';
import type { UpstreamConfig } from '../config/load.js';
import type { CircuitBreaker } from './breaker.js';
import type { CredentialSource } from './credentials.js';
import { RegistryError } from '../http/errors.js';
import { type Arrival, type BlobAnswer, blobAnswer, checked, discard, headMediaType, manifestAnswer, parseTagList, rangeHeader, readCapped, type SmallAnswer } from './answers.js';
import { OCI_INDEX } from '../oci/media-types.js';
import { RealmPolicy } from './realms.js';
import { follow, type RedirectPolicy } from './redirects.js';
import { SignedBlobLinks } from './signed-links.js';
import { sleep, withRetries, type RetryPolicy } from './retry.js';
import { RegistryAuth, type TokenCache } from './tokens.js';
import type { Fetch, FetchInit, UpstreamResponse } from './transport.js';
import { Slots } from '../util/slots.js';
import { NO_OBSERVER, type UpstreamObserver } from '../observability/metrics.js';
import { UpstreamFailureLog } from './failure-log.js';

/** Failures that are answers: the upstream is up and said no. They do not count against the breaker. */
const ANSWERED = new Set(['MANIFEST_UNKNOWN', 'BLOB_UNKNOWN', 'NAME_UNKNOWN', 'DENIED']);

export type { BlobAnswer } from './answers.js';

export interface ManifestAnswer {
  /** sha256 of the body for GET; the Docker-Content-Digest header for HEAD (null if absent). */
  digest: string | null;
  mediaType: string;
  size: number;
  body: Buffer | null;
}


/** Bytes start..end of a blob, both inclusive; no end: to the end of the blob. */
export interface BlobRange {
  start: number;
  end?: number;
}

/** How a fill splits a blob into byte ranges fetched at once; slots cap the connections beyond each fill's first. */
export interface SegmentPlan {
  connections: number;
  segmentSize: number;
  slots: Slots;
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

/**
 * Talks to one upstream registry as an authenticated, read-only client (RegistryAuth), follows blob redirects to
 * object storage without the registry's credentials (redirects.ts), reuses a blob's signed storage link while it
 * is valid, retries what is idempotent. Every failure is a RegistryError whose message names the upstream and
 * what failed, never a secret.
 */
export class RegistryClient {
  readonly name: string;
  readonly baseUrl: string;
  readonly #host: string;
  readonly #deps: RegistryClientDeps;
  readonly #policy: RetryPolicy;
  readonly #redirects: RedirectPolicy;
  readonly #auth: RegistryAuth;
  readonly #links: SignedBlobLinks;
  /** Storage connections the fills of this upstream hold beyond their first (see fillPlan). */
  readonly #storageSlots: Slots;
  readonly #fillSegments: { connections: number; segmentSize: number };
  readonly #failures: UpstreamFailureLog;

  constructor(upstream: UpstreamConfig, deps: RegistryClientDeps) {
    this.name = upstream.name;
    this.baseUrl = upstream.url;
    this.#host = new URL(upstream.url).host;
    this.#deps = deps;
    this.#policy = { retries: upstream.retries, baseDelayMs: 200, maxDelayMs: upstream.retry_max_delay };
    this.#redirects = { maxRedirects: upstream.max_redirects, insecure: upstream.insecure, label: this.label };
    this.#auth = new RegistryAuth({
      fetch: deps.fetch,
      credentials: deps.credentials,
      tokens: deps.tokens,
      realms: new RealmPolicy(upstream),
      now: deps.now,
      observer: this.observer,
      label: this.label,
    });
    this.#links = new SignedBlobLinks({
      fetch: deps.fetch,
      redirects: this.#redirects,
      now: deps.now,
      label: this.label,
      askRegistry: (repo, digest, what, init) => this.#registry(repo, `/v2/${repo}/blobs/${digest}`, what, init, true),
    });
    this.#storageSlots = new Slots(upstream.storage_connections);
    this.#fillSegments = { connections: upstream.fill_connections, segmentSize: upstream.fill_segment_size };
    this.#failures = new UpstreamFailureLog(deps.log, deps.now);
  }

  /** How a fill of this upstream splits a blob into ranges; the slots are shared by all of its fills. */
  get fillPlan(): SegmentPlan {
    return { ...this.#fillSegments, slots: this.#storageSlots };
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
      const body = await readCapped(res, this.label, what);
      this.observer.received('manifest', body.length);
      return manifestAnswer(res, body, this.label, what);
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
        mediaType: headMediaType(res),
        size: Number(res.headers.get('content-length') ?? NaN),
        body: null,
      };
    });
  }

  /**
   * Opens bytes `range` of a blob. The blob's signed storage link is reused while valid (a resume or another range
   * does not ask the registry again); when storage refuses it, the registry is asked for a fresh one, once.
   */
  async openBlob(repo: string, digest: string, range: BlobRange, signal?: AbortSignal): Promise<BlobAnswer> {
    const what = `GET blob ${repo}@${digest}`;
    const init: FetchInit = { method: 'GET', headers: rangeHeader(range), ...(signal ? { signal } : {}) };
    return this.#withRetries(signal, async () => {
      const res = await this.#links.response(repo, digest, what, init);
      if (res.status === 404) {
        await discard(res);
        throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} not found in ${repo} on ${this.label}`);
      }
      return blobAnswer(res, range.start, this.label, what);
    });
  }

  /**
   * The signed storage link the registry redirects this blob to (kept in memory and reused while valid), or null
   * when the registry serves the blob itself. The link carries a signature: it is never logged or persisted.
   */
  async locateBlob(repo: string, digest: string, signal?: AbortSignal): Promise<string | null> {
    const cached = await this.#links.stored(digest);
    if (cached) return cached.href;
    const what = `locate blob ${repo}@${digest}`;
    return this.#withRetries(signal, async () => {
      const init: FetchInit = { method: 'GET', headers: {}, ...(signal ? { signal } : {}) };
      const arrival = await this.#registry(repo, `/v2/${repo}/blobs/${digest}`, what, init, true);
      if (arrival.location) {
        this.#links.remember(digest, arrival.location);
        return arrival.location.href;
      }
      const res = await checked(this.label, this.#deps.now(), arrival, what);
      await discard(res);
      if (res.status === 404) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} not found in ${repo} on ${this.label}`);
      return null;
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
    const answer = await this.#getSmall(repo, `/v2/${repo}/tags/list${q.size ? `?${q}` : ''}`, what, 'application/json', signal);
    if (!answer) throw new RegistryError('NAME_UNKNOWN', `repository ${repo} not found on ${this.label}`);
    return { tags: parseTagList(answer.body, this.label, what), more: /rel="?next"?/.test(answer.headers.get('link') ?? '') };
  }

  /**
   * One page of a Referrers API answer (OCI 1.1) at `path` (`/v2/<repo>/referrers/<digest>`, or a next page's
   * path and query), or null when the registry answers 404: it has no Referrers API (Distribution 2.8).
   */
  getReferrersPage(repo: string, path: string, signal?: AbortSignal): Promise<SmallAnswer | null> {
    return this.#getSmall(repo, path, `GET referrers of ${repo}`, OCI_INDEX, signal);
  }

  /** A small GET answer read whole (tag list, referrers), or null for 404. */
  #getSmall(repo: string, path: string, what: string, accept: string, signal: AbortSignal | undefined): Promise<SmallAnswer | null> {
    return this.#withRetries(signal, async () => {
      const res = await this.#request(repo, path, what, { method: 'GET', headers: { accept }, signal });
      if (res.status === 404) {
        await discard(res);
        return null;
      }
      return { body: await readCapped(res, this.label, what), headers: res.headers };
    });
  }

  get observer(): UpstreamObserver {
    return this.#deps.observer ?? NO_OBSERVER;
  }

  /** Offline mode and the breaker first; then the exchange with retries; its outcome feeds the breaker. */
  async #withRetries<T>(signal: AbortSignal | undefined, attempt: () => Promise<T>): Promise<T> {
    const refusal = this.#refusal();
    if (refusal) {
      this.#failures.report(refusal);
      throw refusal;
    }
    try {
      const result = await this.#retrying(signal, attempt);
      this.#deps.breaker.success();
      return result;
    } catch (err) {
      if (err instanceof RegistryError && ANSWERED.has(err.kind)) {
        this.#deps.breaker.success();
      } else {
        if (err instanceof RegistryError) this.observer.error(err.kind.toLowerCase(), err.message);
        if (!signal?.aborted) this.#deps.breaker.failure();
        if (err instanceof RegistryError && !signal?.aborted) this.#failures.report(err);
      }
      throw err;
    }
  }

  /** Why the upstream is not asked at all: offline, or marked down by the breaker. */
  #refusal(): RegistryError | null {
    if (this.#deps.offline) {
      return new RegistryError('UPSTREAM_OFFLINE', `${this.label} is offline (offline = true): only cached content is served`);
    }
    const wait = this.#deps.breaker.blockedFor();
    if (wait <= 0) return null;
    const seconds = Math.ceil(wait / 1000);
    return new RegistryError('UPSTREAM_DOWN', `${this.label} is marked down after repeated failures; next attempt in ${seconds}s`, {
      headers: { 'retry-after': String(seconds) },
    });
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

  /** One authenticated exchange with the registry, redirects followed; see checked() for what it returns. */
  async #request(repo: string, path: string, what: string, init: FetchInit): Promise<UpstreamResponse> {
    return checked(this.label, this.#deps.now(), await this.#registry(repo, path, what, init), what);
  }

  #registry(repo: string, path: string, what: string, init: FetchInit, untilStorage = false): Promise<Arrival> {
    const url = new URL(this.baseUrl + path);
    return this.#auth.exchange(repo, what, init.signal, (authorization) =>
      follow(this.#deps.fetch, url, what, authorization ? { ...init, headers: { ...init.headers, authorization } } : init, this.#redirects, untilStorage ? 'registry-until-storage' : 'registry'),
    );
  }
}
