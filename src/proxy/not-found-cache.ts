import { LRUCache } from 'lru-cache';
import { RegistryError } from '../http/errors.js';

/** Answers the negative cache remembers: the upstream is up and has no such manifest, tag or repository. */
const REMEMBERED = new Set(['MANIFEST_UNKNOWN', 'NAME_UNKNOWN']);
const MAX_ENTRIES = 10_000;

export interface NotFoundCacheOptions {
  /** How long a 404 is remembered; 0 disables the cache. */
  ttlMs: number;
  now: () => number;
  /** Told of each request answered from the negative cache. */
  onHit?: (upstream: string) => void;
}

/**
 * Upstream 404s by (upstream, repository, reference), kept for a short while so a crowd of clients retrying a
 * mistyped image costs the upstream one request per TTL. Bounded: the least recently used entries go first.
 */
export class NotFoundCache {
  readonly #entries: LRUCache<string, RegistryError> | null;

  constructor(private readonly opts: NotFoundCacheOptions) {
    this.#entries = opts.ttlMs > 0 ? new LRUCache({ max: MAX_ENTRIES, ttl: opts.ttlMs, ttlResolution: 0, perf: { now: opts.now } }) : null;
  }

  /** Throws the remembered 404 for this reference, if there is one. */
  check(upstream: string, repo: string, reference: string): void {
    const remembered = this.#entries?.get(key(upstream, repo, reference));
    if (!remembered) return;
    this.opts.onHit?.(upstream);
    throw new RegistryError(remembered.kind, remembered.message);
  }

  /** Remembers err when it is an upstream 404; anything else (an outage, a refusal) is never remembered. */
  remember(upstream: string, repo: string, reference: string, err: unknown): void {
    if (err instanceof RegistryError && REMEMBERED.has(err.kind)) this.#entries?.set(key(upstream, repo, reference), err);
  }

  forget(upstream: string, repo: string, reference: string): void {
    this.#entries?.delete(key(upstream, repo, reference));
  }
}

function key(upstream: string, repo: string, reference: string): string {
  return `${upstream}\n${repo}\n${reference}`;
}
