import type { Db } from '../cache/db.js';
import type { ManifestStore } from '../cache/manifest-store.js';
import type { ReferrersStore } from '../cache/referrers-store.js';
import { isDigest } from '../oci/digest.js';
import type { Metrics } from '../observability/metrics.js';
import { hitRatio, readTraffic } from '../observability/traffic.js';
import { type ManifestContent, manifestContent } from '../oci/manifest.js';
import { formatPlatform } from '../oci/platform.js';
import type { TagUsage } from './tag-usage.js';

/** A cached tag as GET /admin/images lists it. Names are the upstream's (after route rewrites). */
export interface CachedImage {
  upstream: string;
  repository: string;
  tag: string;
  digest: string;
  mediaType: string;
  /** Index entries whose manifest and blobs are all cached. */
  platforms: string[];
  /** Index entries not (completely) cached. */
  uncachedPlatforms: string[];
  /** Bytes of the cached blobs its cached manifests reference, each blob once. */
  size: number;
  /** Cached manifests (signatures, SBOMs...) whose subject is the image or one of its platform manifests. */
  referrers: number;
  /** When the tag was last checked against the upstream. */
  checkedAt: string;
  /** Client manifest requests by this tag (GET or HEAD), since the tag was first counted. */
  hits: number;
  lastPulled: string | null;
}

export interface CacheStats {
  /** free: bytes available on the file system of storage.dir (null when it cannot be asked). */
  cache: { bytes: number; limit: number | null; free: number | null; blobs: number; manifests: number; tags: number };
  /** Client manifest and blob requests since start-up, by cache outcome; hitRatio = (hit + stale) / all. */
  requests: { hit: number; miss: number; joined: number; stale: number; hitRatio: number | null };
  /** Since start-up: body bytes sent to clients, and received from upstreams. */
  bytes: { served: number; upstream: number };
  fillsInFlight: number;
  warmJobsRunning: number;
}

export interface InventoryDeps {
  db: Db;
  manifests: ManifestStore;
  referrers: ReferrersStore;
  metrics: Metrics;
  usage: TagUsage;
  limitBytes: number | null;
  freeBytes: () => Promise<number | null>;
  fillsInFlight: () => number;
  warmJobsRunning: () => number;
}

interface TagRow {
  upstream: string;
  repo: string;
  tag: string;
  digest: string;
  media_type: string;
  checked_at: number;
  hits: number | null;
  last_pulled: number | null;
}

/** What the cache holds, for the admin API and page: tags with their content, and totals. */
export class Inventory {
  readonly #stmt;

  constructor(private readonly deps: InventoryDeps) {
    this.#stmt = {
      tags: deps.db.prepare<[], TagRow>(
        `SELECT t.upstream, t.repo, t.tag, t.digest, m.media_type, t.checked_at, u.hits, u.last_pulled
         FROM tags t JOIN manifests m ON m.digest = t.digest
         LEFT JOIN tag_usage u ON u.upstream = t.upstream AND u.repo = t.repo AND u.tag = t.tag
         ORDER BY t.upstream, t.repo, t.tag`,
      ),
      blobSize: deps.db.prepare<[string], { size: number }>('SELECT size FROM blobs WHERE digest = ?'),
      totals: deps.db.prepare<[], { blobs: number; bytes: number | null; manifests: number; tags: number }>(
        `SELECT (SELECT count(*) FROM blobs) AS blobs, (SELECT sum(size) FROM blobs) AS bytes,
                (SELECT count(*) FROM manifests) AS manifests, (SELECT count(*) FROM tags) AS tags`,
      ),
    };
  }

  images(): CachedImage[] {
    this.deps.usage.flush();
    return this.#stmt.tags.all().map((row) => {
      const content = this.#summary(row.digest);
      return {
        upstream: row.upstream,
        repository: row.repo,
        tag: row.tag,
        digest: row.digest,
        mediaType: row.media_type,
        ...content,
        checkedAt: new Date(row.checked_at).toISOString(),
        hits: row.hits ?? 0,
        lastPulled: row.last_pulled === null ? null : new Date(row.last_pulled).toISOString(),
      };
    });
  }

  /**
   * Removes a tag (and its usage counts); returns the digest it pointed at, or null when it is not cached. The
   * manifests and blobs stay: eviction reclaims them when space is needed, never under a reader.
   */
  removeTag(upstream: string, repo: string, tag: string): string | null {
    const entry = this.deps.manifests.getTag(upstream, repo, tag);
    if (!entry) return null;
    this.deps.manifests.deleteTag(upstream, repo, tag);
    this.deps.usage.forget(upstream, repo, tag);
    return entry.digest;
  }

  async stats(): Promise<CacheStats> {
    const t = this.#stmt.totals.get()!;
    const traffic = await readTraffic(this.deps.metrics);
    return {
      cache: { bytes: t.bytes ?? 0, limit: this.deps.limitBytes, free: await this.deps.freeBytes(), blobs: t.blobs, manifests: t.manifests, tags: t.tags },
      requests: { ...traffic.outcomes, hitRatio: hitRatio(traffic.outcomes) },
      bytes: { served: traffic.served, upstream: traffic.upstream },
      fillsInFlight: this.deps.fillsInFlight(),
      warmJobsRunning: this.deps.warmJobsRunning(),
    };
  }

  /** Platforms, cached size and cached referrers of a tag's manifest (and, for an index, of its entries). */
  #summary(digest: string): Pick<CachedImage, 'platforms' | 'uncachedPlatforms' | 'size' | 'referrers'> {
    const blobs = new Map<string, number>();
    const platforms: string[] = [];
    const uncachedPlatforms: string[] = [];
    const root = this.#content(digest);
    const subjects = [digest, ...(root?.kind === 'index' ? root.manifests.map((e) => e.digest) : [])];
    const referrers = new Set(subjects.flatMap((d) => (isDigest(d) ? this.deps.referrers.cachedReferrers(d).map((r) => r.digest) : [])));
    if (root?.kind === 'index') {
      for (const entry of root.manifests) {
        const child = this.#content(entry.digest);
        const cached = child?.kind === 'image' && this.#addBlobs(child, blobs);
        if (!entry.platform || entry.platform.os === 'unknown' || isAttestation(entry)) continue;
        (cached ? platforms : uncachedPlatforms).push(formatPlatform(entry.platform));
      }
    } else if (root) {
      this.#addBlobs(root, blobs);
    }
    return { platforms, uncachedPlatforms, size: [...blobs.values()].reduce((n, s) => n + s, 0), referrers: referrers.size };
  }

  /** Adds the cached blobs of an image manifest; true when all of them are cached. */
  #addBlobs(image: ManifestContent & { kind: 'image' }, into: Map<string, number>): boolean {
    let complete = true;
    for (const d of [image.config, ...image.layers]) {
      const size = this.#stmt.blobSize.get(d.digest)?.size;
      if (size === undefined) complete = false;
      else into.set(d.digest, size);
    }
    return complete;
  }

  #content(digest: string): ManifestContent | null {
    const m = this.deps.manifests.get(digest);
    return m && manifestContent(m.body, m.digest);
  }
}

function isAttestation(entry: { annotations?: Record<string, string> }): boolean {
  return entry.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest';
}
