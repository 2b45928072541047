import type { Logger } from 'pino';
import type { ManifestStore } from '../cache/manifest-store.js';
import { ALL_TYPES, type ReferrersStore, type StoredReferrers } from '../cache/referrers-store.js';
import { RegistryError } from '../http/errors.js';
import type { Digest } from '../oci/digest.js';
import { OCI_INDEX } from '../oci/media-types.js';
import { filterReferrers, parseReferrers, type ReferrerDescriptor, referrersTag } from '../oci/referrers.js';
import { upstreamUnavailable } from '../upstream/errors.js';
import { fetchReferrers, type UpstreamReferrers } from '../upstream/referrers.js';
import { SingleFlight } from '../util/single-flight.js';
import type { CacheOutcome } from './blob-service.js';
import type { UpstreamTarget } from './target.js';

/** How long an upstream that answered 404 on the Referrers API is asked through the referrers tag schema only. */
const NO_API_RECHECK_MS = 60 * 60_000;

export interface ServedReferrers {
  manifests: ReferrerDescriptor[];
  /** The list was filtered by artifactType (by the mirror or by the upstream): OCI-Filters-Applied. */
  filtered: boolean;
  outcome: CacheOutcome;
}

export interface ReferrersServiceOptions {
  /** Lists are revalidated like tags: served from the cache this long, then asked for again. */
  tagTtlMs: number;
  now: () => number;
  log: Logger;
  onStale?: (upstream: string) => void;
}

/**
 * Referrers (OCI 1.1) of a digest: the upstream's Referrers API, or its referrers tag (`sha256-<hex>`) when it
 * has none; the list cached and revalidated like a tag, served stale when the upstream cannot be asked, and
 * built from the cached manifests that name the digest as subject when nothing was listed before (a bundle).
 */
export class ReferrersService {
  readonly #fetches = new SingleFlight<string, UpstreamReferrers>();
  /** Upstreams without a Referrers API (by name), and when that was found. */
  readonly #withoutApi = new Map<string, number>();

  constructor(
    private readonly store: ReferrersStore,
    private readonly manifests: ManifestStore,
    private readonly opts: ReferrersServiceOptions,
  ) {}

  async list(target: UpstreamTarget, digest: Digest, artifactType: string | undefined, lookup: { refresh?: boolean } = {}): Promise<ServedReferrers> {
    const upstream = target.client.name;
    const whole = this.store.get(upstream, target.repo, digest, ALL_TYPES);
    const typed = artifactType === undefined ? null : this.store.get(upstream, target.repo, digest, artifactType);
    const fresh = (s: StoredReferrers | null) => s !== null && this.opts.now() - s.checkedAt < this.opts.tagTtlMs;
    if (!lookup.refresh && fresh(whole)) return served(whole!.manifests, artifactType, false, 'hit');
    if (!lookup.refresh && fresh(typed)) return served(typed!.manifests, artifactType, true, 'hit');
    try {
      const answer = await this.#fetch(target, digest, artifactType);
      this.store.put(upstream, target.repo, digest, answer.filtered ? artifactType! : ALL_TYPES, answer.manifests, this.opts.now());
      return served(answer.manifests, artifactType, answer.filtered, 'miss');
    } catch (err) {
      if (!upstreamUnavailable(err)) throw err;
      const fields = { upstream, repo: target.repo, digest, reason: err.message };
      if (whole || typed) {
        this.opts.log.warn(fields, 'upstream unavailable; serving cached referrers');
        this.opts.onStale?.(upstream);
        return whole ? served(whole.manifests, artifactType, false, 'stale') : served(typed!.manifests, artifactType, true, 'stale');
      }
      // Never listed here (imported from a bundle, or warmed before referrers were): what the cache holds.
      if (!this.manifests.get(digest)) throw err;
      this.opts.log.warn(fields, 'upstream unavailable; listing the cached manifests that refer to the digest');
      return served(this.store.cachedReferrers(digest), artifactType, false, 'stale');
    }
  }

  /** Asks the upstream (one request per list at a time): its Referrers API, else the referrers tag schema. */
  #fetch(target: UpstreamTarget, digest: Digest, artifactType: string | undefined): Promise<UpstreamReferrers> {
    const key = `${target.client.name}\n${target.repo}\n${digest}\n${artifactType ?? ''}`;
    return this.#fetches.run(key, async () => {
      const upstream = target.client.name;
      const found = this.#withoutApi.get(upstream);
      if (found === undefined || this.opts.now() - found >= NO_API_RECHECK_MS) {
        const listed = await fetchReferrers(target.client, target.repo, digest, artifactType);
        if (listed) {
          this.#withoutApi.delete(upstream);
          return listed;
        }
        this.#withoutApi.set(upstream, this.opts.now());
      }
      return { manifests: await this.#fromTag(target, digest), filtered: false };
    });
  }

  /** The index under the digest's referrers tag; none when the tag does not exist. */
  async #fromTag(target: UpstreamTarget, digest: Digest): Promise<ReferrerDescriptor[]> {
    const tag = referrersTag(digest);
    try {
      const answer = await target.client.getManifest(target.repo, tag, [OCI_INDEX]);
      const listed = parseReferrers(answer.body!);
      if (!listed) throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${target.client.label}: referrers tag ${target.repo}:${tag} is not an image index`);
      return listed;
    } catch (err) {
      if (err instanceof RegistryError && (err.kind === 'MANIFEST_UNKNOWN' || err.kind === 'NAME_UNKNOWN')) return [];
      throw err;
    }
  }
}

function served(all: ReferrerDescriptor[], artifactType: string | undefined, upstreamFiltered: boolean, outcome: CacheOutcome): ServedReferrers {
  if (upstreamFiltered || artifactType === undefined) return { manifests: all, filtered: upstreamFiltered, outcome };
  return { manifests: filterReferrers(all, artifactType), filtered: true, outcome };
}
