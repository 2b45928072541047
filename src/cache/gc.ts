import type { BlobInfo, BlobStore, Leftover } from './blob-store.js';
import type { Db } from './db.js';

export interface GcOptions {
  /** Entries used or written within this long are kept. */
  graceMs: number;
  now: () => number;
}

/** A cached referrers list (see db.ts): artifactType '' for the whole list. */
export interface ReferrersListKey {
  upstream: string;
  repo: string;
  digest: string;
  artifactType: string;
}

/** What a run removed, item by item (sizes in bytes; a manifest's is its body in the database). */
export interface GcFreed {
  manifests: BlobInfo[];
  blobs: BlobInfo[];
  leftovers: Leftover[];
  referrerLists: ReferrersListKey[];
  /** Blobs that qualified but were being read, so were kept. */
  inUse: string[];
}

export interface GcReport {
  manifests: number;
  blobs: number;
  blobBytes: number;
  tempFiles: number;
  tempBytes: number;
  inUse: number;
  referrerLists: number;
}

/**
 * Removes what nothing leads to any more: manifests that no tag and no remaining manifest references, whose
 * subject (a signature's or SBOM's image) does not remain cached, and that were not served within the grace
 * period (pulls by digest keep theirs alive) - an index removed takes its unused children with it in the same
 * run; then referrers lists of digests no longer cached and unchecked within the grace period, blobs that no
 * remaining manifest references and that were not read within the grace period, and the store's leftovers older
 * than the grace period (fills that a crashed or killed process left). A dry run gives it a copy of the database
 * and a store that only pretends to delete (dry-run-blob-store.ts).
 */
export async function collectGarbage(db: Db, store: BlobStore, opts: GcOptions): Promise<GcFreed> {
  const cutoff = opts.now() - opts.graceMs;
  const manifests = db.transaction(() => dropManifests(db, cutoff)).immediate();
  const referrerLists = db
    .prepare<[number], ReferrersListKey>(
      `DELETE FROM referrers AS r
        WHERE r.checked_at < ? AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = r.digest)
        RETURNING upstream, repo, digest, artifact_type AS artifactType`,
    )
    .all(cutoff);
  const freed: GcFreed = { manifests, referrerLists, blobs: [], leftovers: [], inUse: [] };
  const blobs = db
    .prepare<[number], BlobInfo>(
      `SELECT digest, size FROM blobs b
        WHERE b.last_access < ? AND NOT EXISTS (SELECT 1 FROM refs r WHERE r.child = b.digest)
        ORDER BY digest`,
    )
    .all(cutoff);
  for (const blob of blobs) {
    if (await store.delete(blob.digest)) freed.blobs.push(blob);
    else freed.inUse.push(blob.digest);
  }
  freed.leftovers = await store.leftovers(cutoff);
  await store.removeLeftovers(freed.leftovers);
  return freed;
}

/** Finds and deletes the unused manifests (in one transaction, so a tag set meanwhile keeps its manifest). */
function dropManifests(db: Db, cutoff: number): BlobInfo[] {
  const doomed = new Map(
    db
      .prepare<[number], BlobInfo>(
        `SELECT digest, size FROM manifests m
          WHERE m.last_access < ? AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.digest = m.digest)`,
      )
      .all(cutoff)
      .map((m) => [m.digest, m]),
  );
  // a manifest stays while a manifest that lists it (its index) or that it refers to (its subject) stays
  const keptBy = db
    .prepare<[number], { digest: string; keeper: string }>(
      `SELECT r.child AS digest, r.manifest AS keeper FROM refs r JOIN manifests c ON c.digest = r.child WHERE c.last_access < ?
       UNION ALL
       SELECT s.manifest, s.subject FROM subjects s JOIN manifests k ON k.digest = s.subject`,
    )
    .all(cutoff);
  for (let changed = true; changed; ) {
    changed = false;
    for (const { digest, keeper } of keptBy) {
      if (doomed.has(digest) && !doomed.has(keeper)) {
        doomed.delete(digest);
        changed = true;
      }
    }
  }
  const drop = db.prepare('DELETE FROM manifests WHERE digest = ?');
  for (const digest of doomed.keys()) drop.run(digest);
  return [...doomed.values()];
}

/** The counts of a run (the mirror logs them). */
export function gcCounts(freed: GcFreed): GcReport {
  const bytes = (items: { size: number }[]) => items.reduce((n, i) => n + i.size, 0);
  return {
    manifests: freed.manifests.length,
    blobs: freed.blobs.length,
    blobBytes: bytes(freed.blobs),
    tempFiles: freed.leftovers.length,
    tempBytes: bytes(freed.leftovers),
    inUse: freed.inUse.length,
    referrerLists: freed.referrerLists.length,
  };
}
