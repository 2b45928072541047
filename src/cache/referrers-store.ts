import type { Digest } from '../oci/digest.js';
import { asReferrer, type ReferrerDescriptor } from '../oci/referrers.js';
import type { Db } from './db.js';

export interface StoredReferrers {
  manifests: ReferrerDescriptor[];
  checkedAt: number;
}

/** Whole referrers lists are stored under this artifact type; a type names a list the upstream filtered. */
export const ALL_TYPES = '';

/** Referrers lists (OCI 1.1) by upstream, repository and subject digest, as the upstream listed them. */
export class ReferrersStore {
  readonly #stmt;

  constructor(db: Db) {
    this.#stmt = {
      get: db.prepare<[string, string, string, string], { manifests: string; checked_at: number }>(
        'SELECT manifests, checked_at FROM referrers WHERE upstream = ? AND repo = ? AND digest = ? AND artifact_type = ?',
      ),
      put: db.prepare(
        `INSERT INTO referrers (upstream, repo, digest, artifact_type, manifests, checked_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (upstream, repo, digest, artifact_type) DO UPDATE SET manifests = excluded.manifests, checked_at = excluded.checked_at`,
      ),
      count: db.prepare<[string, string, string], { n: number }>(
        `SELECT json_array_length(manifests) AS n FROM referrers WHERE upstream = ? AND repo = ? AND digest = ? AND artifact_type = ''`,
      ),
      pointingAt: db.prepare<[string], { digest: string; media_type: string; size: number; body: Buffer }>(
        'SELECT m.digest, m.media_type, m.size, m.body FROM subjects s JOIN manifests m ON m.digest = s.manifest WHERE s.subject = ? ORDER BY m.digest',
      ),
    };
  }

  /** The list stored for artifactType (ALL_TYPES: the whole list). */
  get(upstream: string, repo: string, digest: Digest, artifactType: string): StoredReferrers | null {
    const row = this.#stmt.get.get(upstream, repo, digest, artifactType);
    return row ? { manifests: JSON.parse(row.manifests) as ReferrerDescriptor[], checkedAt: row.checked_at } : null;
  }

  put(upstream: string, repo: string, digest: Digest, artifactType: string, manifests: readonly ReferrerDescriptor[], checkedAt: number): void {
    this.#stmt.put.run(upstream, repo, digest, artifactType, JSON.stringify(manifests), checkedAt);
  }

  /** How many referrers the whole stored list of a digest names; null when none is stored. */
  count(upstream: string, repo: string, digest: string): number | null {
    return this.#stmt.count.get(upstream, repo, digest)?.n ?? null;
  }

  /** The cached manifests whose subject is digest, as referrers descriptors (what a registry would list). */
  cachedReferrers(digest: Digest): ReferrerDescriptor[] {
    return this.#stmt.pointingAt.all(digest).flatMap((m) => asReferrer({ digest: m.digest, mediaType: m.media_type, size: m.size, body: m.body }, digest) ?? []);
  }
}
