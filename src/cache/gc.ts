import type { BlobStore } from './blob-store.js';
import type { Db } from './db.js';

export interface GcOptions {
  /** Entries used or written within this long are kept. */
  graceMs: number;
  dryRun: boolean;
  now: () => number;
}

export interface GcReport {
  manifests: number;
  blobs: number;
  blobBytes: number;
  tempFiles: number;
  tempBytes: number;
  /** Blobs that qualified but were being read, so were kept. */
  inUse: number;
  /** Cached referrers lists whose subject is not a cached manifest and that were not checked within the grace period. */
  referrerLists: number;
}

/**
 * Removes what nothing leads to any more: manifests that no tag and no other manifest references, whose subject
 * (a signature's or SBOM's image) is not cached, and that were not served within the grace period (pulls by digest keep theirs alive), then blobs that no remaining manifest
 * references and that were not read within the grace period, and the store's leftovers older than the grace
 * period (fills that a crashed or killed process left), and referrers lists of digests no longer cached. With dryRun,
 * only reports what it would remove.
 */
export async function collectGarbage(db: Db, store: BlobStore, opts: GcOptions): Promise<GcReport> {
  const cutoff = opts.now() - opts.graceMs;
  const report: GcReport = { manifests: 0, blobs: 0, blobBytes: 0, tempFiles: 0, tempBytes: 0, inUse: 0, referrerLists: 0 };

  const manifests = db
    .prepare(
      `SELECT digest FROM manifests m
        WHERE m.last_access < ?
          AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.digest = m.digest)
          AND NOT EXISTS (SELECT 1 FROM refs r WHERE r.child = m.digest)
          AND NOT EXISTS (SELECT 1 FROM subjects s JOIN manifests k ON k.digest = s.subject WHERE s.manifest = m.digest)`,
    )
    .all(cutoff) as { digest: string }[];
  report.manifests = manifests.length;
  if (!opts.dryRun) {
    const drop = db.prepare('DELETE FROM manifests WHERE digest = ?');
    db.transaction(() => manifests.forEach((m) => drop.run(m.digest)))();
  }

  const gone = new Set(manifests.map((m) => m.digest));
  report.referrerLists = dropReferrerLists(db, cutoff, gone, opts.dryRun);
  const blobs = db
    .prepare(
      `SELECT b.digest, b.size, group_concat(r.manifest) AS referrers FROM blobs b
         LEFT JOIN refs r ON r.child = b.digest
        WHERE b.last_access < ?
        GROUP BY b.digest`,
    )
    .all(cutoff) as { digest: string; size: number; referrers: string | null }[];
  for (const b of blobs) {
    // with dryRun the manifests above are still in the database: count what their removal would orphan
    const referrers = (b.referrers ?? '').split(',').filter((d) => d && !gone.has(d));
    if (referrers.length > 0) continue;
    if (opts.dryRun) {
      if (store.inUse(b.digest)) report.inUse++;
      else {
        report.blobs++;
        report.blobBytes += b.size;
      }
      continue;
    }
    if (await store.delete(b.digest)) {
      report.blobs++;
      report.blobBytes += b.size;
    } else report.inUse++;
  }

  const leftovers = await store.leftovers(cutoff);
  report.tempFiles = leftovers.length;
  report.tempBytes = leftovers.reduce((n, l) => n + l.size, 0);
  if (!opts.dryRun) await store.removeLeftovers(leftovers);
  return report;
}

/** Referrers lists for a subject that is not (or, with this run, no longer) a cached manifest, unchecked since cutoff. */
function dropReferrerLists(db: Db, cutoff: number, goneManifests: Set<string>, dryRun: boolean): number {
  const stale = (
    db
      .prepare(
        `SELECT r.rowid AS id, r.digest, EXISTS (SELECT 1 FROM manifests m WHERE m.digest = r.digest) AS cached
           FROM referrers r WHERE r.checked_at < ?`,
      )
      .all(cutoff) as { id: number; digest: string; cached: number }[]
  ).filter((r) => !r.cached || goneManifests.has(r.digest));
  if (!dryRun) {
    const drop = db.prepare('DELETE FROM referrers WHERE rowid = ?');
    db.transaction(() => stale.forEach((r) => drop.run(r.id)))();
  }
  return stale.length;
}
