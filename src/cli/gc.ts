import { pino } from 'pino';
import { formatBytes } from '../admin/format.js';
import { BlobIndex } from '../cache/blob-index.js';
import type { BlobStore } from '../cache/blob-store.js';
import { openBlobStore, openCacheDatabase } from '../cache/cache.js';
import { type Db, openDatabaseCopy } from '../cache/db.js';
import { DryRunBlobStore } from '../cache/dry-run-blob-store.js';
import { collectGarbage, gcCounts, type GcFreed } from '../cache/gc.js';
import { cacheLayout } from '../cache/layout.js';
import { ManifestStore } from '../cache/manifest-store.js';
import { reconcile, type ReconcileReport } from '../cache/reconcile.js';
import type { Config } from '../config/load.js';

export interface GcCommandOptions {
  /** Run against a copy of the database and a store that only pretends to delete: the same report, nothing changed. */
  dryRun: boolean;
  /** Also list every item freed. */
  verbose?: boolean;
  graceMs?: number;
  out: NodeJS.WritableStream;
}

/**
 * `acr-mirror gc`: reconciles the database with the disk, then removes unreferenced entries and stale temp files
 * from the cache directory (safe beside a running mirror: SQLite arbitrates, files in use stay readable).
 */
export async function gcCommand(config: Config, opts: GcCommandOptions): Promise<GcFreed> {
  const { db, store, index } = await openForGc(config, opts.dryRun);
  try {
    const reconciled = await reconcile(index, store, new ManifestStore(db, Date.now), pino({ level: 'silent' }));
    const freed = await collectGarbage(db, store, { graceMs: opts.graceMs ?? config.storage.gc_grace, now: Date.now });
    if (opts.verbose) listFreed(freed, opts.out);
    writeSummary(reconciled, freed, opts);
    return freed;
  } finally {
    db.close();
  }
}

async function openForGc(config: Config, dryRun: boolean): Promise<{ db: Db; store: BlobStore; index: BlobIndex }> {
  const dir = config.storage.dir;
  if (!dryRun) {
    const db = await openCacheDatabase(dir);
    return { db, ...openBlobStore(dir, db, Date.now, config.storage.oss) };
  }
  const db = await openDatabaseCopy(cacheLayout(dir).database);
  const store = new DryRunBlobStore(openBlobStore(dir, db, Date.now, config.storage.oss).store);
  return { db, store, index: new BlobIndex(db, Date.now).follow(store) };
}

function listFreed(freed: GcFreed, out: NodeJS.WritableStream): void {
  for (const m of freed.manifests) out.write(`manifest       ${m.digest}  ${formatBytes(m.size)}\n`);
  for (const r of freed.referrerLists) out.write(`referrers list ${r.upstream} ${r.repo} ${r.digest}${r.artifactType ? ` (${r.artifactType})` : ''}\n`);
  for (const b of freed.blobs) out.write(`blob           ${b.digest}  ${formatBytes(b.size)}\n`);
  for (const l of freed.leftovers) out.write(`temp file      ${l.name}  ${formatBytes(l.size)}\n`);
}

function writeSummary(reconciled: ReconcileReport, freed: GcFreed, opts: GcCommandOptions): void {
  const { droppedRows, adopted, removed } = reconciled;
  if (droppedRows || adopted || removed) {
    opts.out.write(
      `${opts.dryRun ? 'would reconcile' : 'reconciled'} the database with the disk: ${droppedRows} row(s) of missing blobs dropped ` +
        `(with the manifests leading to them), ${adopted} blob(s) without a row adopted, ${removed} invalid blob(s) removed\n`,
    );
  }
  const report = gcCounts(freed);
  opts.out.write(
    `${opts.dryRun ? 'would free' : 'freed'} ${formatBytes(report.blobBytes + report.tempBytes)}: ${report.blobs} blob(s) (${formatBytes(report.blobBytes)}), ` +
      `${report.manifests} manifest(s), ${report.tempFiles} temp file(s) (${formatBytes(report.tempBytes)}), ${report.referrerLists} referrers list(s)` +
      `${report.inUse ? `; ${report.inUse} blob(s) kept because they are being read` : ''}\n`,
  );
}
