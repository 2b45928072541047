import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { AccessLog } from '../cache/access-log.js';
import type { ManifestStore, StoredManifest, TagEntry } from '../cache/manifest-store.js';
import type { SharedManifests } from '../cache/shared-manifests.js';
import { RegistryError } from '../http/errors.js';
import { isDigest } from '../oci/digest.js';
import { isManifestMediaType } from '../oci/media-types.js';
import { type Reference, referenceString } from '../oci/reference.js';
import { SingleFlight } from '../util/single-flight.js';
import { truncate } from '../util/truncate.js';
import type { CacheOutcome } from './blob-service.js';
import { acceptable, upstreamAccept } from './media-types.js';
import type { MissRouting } from './miss-routing.js';
import type { NotFoundCache } from './not-found-cache.js';
import { upstreamUnavailable } from '../upstream/errors.js';
import type { UpstreamTarget } from './target.js';

const RESOLVED_TAG_WINDOW_MS = 10 * 60_000;

export interface ServedManifest {
  digest: string;
  mediaType: string;
  size: number;
  /** null for HEAD. */
  body: Buffer | null;
  outcome: CacheOutcome;
}

export interface ManifestServiceOptions {
  tagTtlMs: number;
  now: () => number;
  log: Logger;
  /** Told when a cached tag is served because the upstream could not be asked. */
  onStale?: (upstream: string) => void;
  access: AccessLog;
  /** Upstream 404s remembered for a short while (cache.not_found_ttl). */
  notFound: NotFoundCache;
  /** Manifests and tags shared with other replicas (storage.backend = "oss"): looked in before the upstream is asked. */
  shared?: SharedManifests;
  /** Set in a cluster: a manifest by digest another member owns is fetched through it. */
  routing?: MissRouting;
}

export interface ManifestLookup {
  /** Ask the upstream even if it answered 404 within not_found_ttl, and forget that answer (warm, admin). */
  refresh?: boolean;
  /** Another cluster member forwarded this miss here (the owner): ask the upstream, never forward it again. */
  fromPeer?: boolean;
}

/**
 * Manifests: digests are immutable and served from the cache once stored; tags are served from the cache
 * while fresh (tag_ttl), then re-checked with a HEAD and re-fetched only if their digest changed. If the
 * upstream cannot be asked, a cached tag is served stale.
 */
export class ManifestService {
  readonly #fetches = new SingleFlight<string, StoredManifest>();
  /**
   * Tags an upstream HEAD resolved to a manifest that is not cached, by upstream and digest. containerd resolves
   * a tag with HEAD and then GETs the digest: the tag is recorded when that manifest is stored, so the image can
   * later be pulled by tag from the cache alone, and counts as checked when the HEAD was answered. Kept for
   * RESOLVED_TAG_WINDOW_MS: containerd asks for the digest right after its HEAD.
   */
  readonly #resolvedTags: LRUCache<string, { repo: string; tag: string; checkedAt: number }[]>;

  constructor(
    private readonly store: ManifestStore,
    private readonly opts: ManifestServiceOptions,
  ) {
    this.#resolvedTags = new LRUCache({ max: 10_000, ttl: RESOLVED_TAG_WINDOW_MS, perf: { now: opts.now } });
  }

  async get(target: UpstreamTarget, ref: Reference, clientAccept: readonly string[], head: boolean, lookup: ManifestLookup = {}): Promise<ServedManifest> {
    const refresh = lookup.refresh ?? false;
    const served =
      ref.kind === 'digest'
        ? await this.#byDigest(target, ref.digest, clientAccept, head, { refresh, lookup })
        : await this.#byTag(target, ref.tag, clientAccept, head, refresh);
    if (!isManifestMediaType(served.mediaType)) {
      // Cached before ingest checked media types: its bytes may be a page a browser would render on our origin.
      const fields = { upstream: target.client.name, repo: target.repo, ref: referenceString(ref), digest: served.digest, mediaType: served.mediaType };
      this.opts.log.warn(fields, 'cached manifest has a media type that is not a manifest type; refused');
      throw new RegistryError('MANIFEST_INVALID', `manifest ${served.digest} is cached with media type ${truncate(served.mediaType)}, which is not a manifest type; not served`);
    }
    this.opts.access.manifest(served.digest);
    return served;
  }

  /** Whether a miss of digest goes to the member that owns it (a GET there, even for HEAD: the owner caches it). */
  #forwards(digest: string, lookup: ManifestLookup): boolean {
    return this.opts.routing !== undefined && !lookup.fromPeer && this.opts.routing.forwards(digest);
  }

  async #byDigest(
    target: UpstreamTarget,
    digest: string,
    accept: readonly string[],
    head: boolean,
    { refresh, lookup }: { refresh: boolean; lookup: ManifestLookup },
  ): Promise<ServedManifest> {
    const local = await this.#known(digest);
    if (local) return serve(local, 'hit', head);
    // Asked only on a miss: who owns the digest is a hash per member.
    const forward = this.#forwards(digest, lookup);
    return this.#ask(target, digest, refresh, async () => {
      if (head && !forward) {
        const answer = await target.client.headManifest(target.repo, digest, upstreamAccept(accept));
        if (answer.digest === digest && answer.mediaType && Number.isFinite(answer.size)) {
          return { digest, mediaType: answer.mediaType, size: answer.size, body: null, outcome: 'miss' };
        }
      }
      const fetched = await this.#fetch(target, digest, accept, digest, forward);
      return serve(fetched, 'miss', head);
    });
  }

  /** Asks the upstream about a reference unless it answered 404 within not_found_ttl; a 404 is remembered. */
  async #ask<T>(target: UpstreamTarget, reference: string, refresh: boolean, question: () => Promise<T>): Promise<T> {
    const upstream = target.client.name;
    if (refresh) this.opts.notFound.forget(upstream, target.repo, reference);
    else this.opts.notFound.check(upstream, target.repo, reference);
    try {
      return await question();
    } catch (err) {
      this.opts.notFound.remember(upstream, target.repo, reference, err);
      throw err;
    }
  }

  async #byTag(target: UpstreamTarget, tag: string, accept: readonly string[], head: boolean, refresh: boolean): Promise<ServedManifest> {
    const upstream = target.client.name;
    const { entry, cached } = await this.#cachedTag(upstream, target.repo, tag);
    const usable = cached && acceptable(cached.mediaType, accept) ? cached : null;
    if (usable && this.opts.now() - entry!.checkedAt < this.opts.tagTtlMs) return serve(usable, 'hit', head);

    try {
      return await this.#ask(target, tag, refresh, () => this.#revalidateTag(target, tag, accept, head, cached, usable));
    } catch (err) {
      if (err instanceof RegistryError && err.kind === 'MANIFEST_UNKNOWN' && entry) {
        this.store.deleteTag(upstream, target.repo, tag);
        this.opts.shared?.tagGone(upstream, target.repo, tag);
      }
      if (usable && upstreamUnavailable(err)) {
        // Offline or marked down is logged once where it is decided, not on every request.
        const level = err.kind === 'UPSTREAM_OFFLINE' || err.kind === 'UPSTREAM_DOWN' ? 'debug' : 'warn';
        this.opts.log[level]({ upstream, repo: target.repo, ref: tag, digest: usable.digest, reason: err.message }, 'upstream unavailable; serving cached tag');
        this.opts.onStale?.(upstream);
        return serve(usable, 'stale', head);
      }
      throw err;
    }
  }

  /** The tag and its manifest from SQLite or, if SQLite has no manifest for it, from the shared bucket. */
  async #cachedTag(upstream: string, repo: string, tag: string): Promise<{ entry: TagEntry | null; cached: StoredManifest | null }> {
    const entry = this.store.getTag(upstream, repo, tag);
    const cached = entry ? this.store.get(entry.digest) : null;
    const shared = cached ? null : await this.opts.shared?.tag(upstream, repo, tag);
    if (!shared) return { entry, cached };
    return { entry: { digest: shared.manifest.digest, checkedAt: shared.checkedAt }, cached: shared.manifest };
  }

  /** Asks the upstream about a tag whose cached manifest is missing, stale or of a type the client cannot take. */
  async #revalidateTag(
    target: UpstreamTarget,
    tag: string,
    accept: readonly string[],
    head: boolean,
    cached: StoredManifest | null,
    usable: StoredManifest | null,
  ): Promise<ServedManifest> {
    const upstream = target.client.name;
    if (usable) {
      const answer = await target.client.headManifest(target.repo, tag, upstreamAccept(accept));
      const current = await this.#known(answer.digest);
      if (current && acceptable(current.mediaType, accept)) {
        this.#setTag(upstream, target.repo, tag, current);
        return serve(current, 'hit', head);
      }
    } else if (head) {
      const answer = await target.client.headManifest(target.repo, tag, upstreamAccept(accept));
      const known = await this.#known(answer.digest);
      if (known && acceptable(known.mediaType, accept)) {
        this.#setTag(upstream, target.repo, tag, known);
        return serve(known, 'hit', true);
      }
      if (isDigest(answer.digest) && answer.mediaType && Number.isFinite(answer.size)) {
        this.#rememberResolvedTag(upstream, answer.digest, { repo: target.repo, tag, checkedAt: this.opts.now() });
        return { digest: answer.digest, mediaType: answer.mediaType, size: answer.size, body: null, outcome: 'miss' };
      }
    }
    const fetched = await this.#fetch(target, tag, accept, null);
    if ((!cached || acceptable(fetched.mediaType, accept)) && this.store.get(fetched.digest)) {
      this.#setTag(upstream, target.repo, tag, fetched);
    }
    return serve(fetched, 'miss', head);
  }

  /**
   * GETs a manifest upstream, or by digest from the member that owns it when `forward` (the upstream if it does not
   * answer); one request per upstream+repo+reference at a time. Verifies and stores it.
   */
  #fetch(target: UpstreamTarget, reference: string, accept: readonly string[], expected: string | null, forward = false): Promise<StoredManifest> {
    const key = `${target.client.name}\n${target.repo}\n${reference}\n${accept.join(',')}`;
    return this.#fetches.run(key, async () => {
      const fromOwner = forward && expected ? await this.opts.routing!.manifest(target, expected, accept) : null;
      const answer = fromOwner ?? (await target.client.getManifest(target.repo, reference, upstreamAccept(accept)));
      if (expected && answer.digest !== expected) {
        throw new RegistryError(
          'UPSTREAM_BAD_RESPONSE',
          `${target.client.label}: manifest ${expected} of ${target.repo} does not match its digest (got ${answer.digest}); not cached`,
        );
      }
      const m: StoredManifest = { digest: answer.digest!, mediaType: answer.mediaType, size: answer.size, body: answer.body! };
      const fields = { upstream: target.client.name, repo: target.repo, ref: reference, digest: m.digest, mediaType: m.mediaType };
      try {
        this.store.put(m);
        this.opts.log.info(fields, 'manifest cached');
        this.#recordResolvedTags(target.client.name, m);
      } catch (err) {
        // A full or read-only cache must not stop the mirror from passing the manifest on.
        this.opts.log.error({ ...fields, err: (err as Error).message }, 'manifest not cached: the database could not be written');
      }
      this.opts.shared?.fetched(m);
      return m;
    });
  }

  /** A manifest the upstream named by digest, if SQLite or the shared bucket has it. */
  async #known(digest: string | null): Promise<StoredManifest | null> {
    if (!isDigest(digest)) return null;
    return this.store.get(digest) ?? (await this.opts.shared?.manifest(digest)) ?? null;
  }

  /** Records what the upstream said the tag points at, here and in the shared bucket. */
  #setTag(upstream: string, repo: string, tag: string, m: StoredManifest, checkedAt = this.opts.now()): void {
    this.store.setTag(upstream, repo, tag, m.digest, checkedAt);
    this.opts.shared?.tagChecked(upstream, repo, tag, m, checkedAt);
  }

  #rememberResolvedTag(upstream: string, digest: string, entry: { repo: string; tag: string; checkedAt: number }): void {
    const key = `${upstream}\n${digest}`;
    const others = (this.#resolvedTags.get(key) ?? []).filter((e) => e.repo !== entry.repo || e.tag !== entry.tag);
    this.#resolvedTags.set(key, [...others, entry]);
  }

  #recordResolvedTags(upstream: string, m: StoredManifest): void {
    const key = `${upstream}\n${m.digest}`;
    const entries = this.#resolvedTags.get(key);
    if (!entries) return;
    this.#resolvedTags.delete(key);
    for (const { repo, tag, checkedAt } of entries) {
      // Unless the tag has been seen pointing elsewhere since.
      const current = this.store.getTag(upstream, repo, tag);
      if (!current || current.checkedAt < checkedAt) this.#setTag(upstream, repo, tag, m, checkedAt);
    }
  }
}

function serve(m: StoredManifest, outcome: CacheOutcome, head: boolean): ServedManifest {
  return { digest: m.digest, mediaType: m.mediaType, size: m.size, body: head ? null : m.body, outcome };
}
