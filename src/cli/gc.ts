import { pino } from 'pino';
import { formatBytes } from '../admin/format.js';
import { openBlobStore, openCacheDatabase } from '../cache/cache.js';
import { collectGarbage, type GcReport } from '../cache/gc.js';
import { ManifestStore } from '../cache/manifest-store.js';
import { reconcile } from '../cache/reconcile.js';
import type { Config } from '../config/load.js';

/**
 * `acr-mirror gc`: reconciles the database with the disk, then removes unreferenced entries and stale temp files
 * from the cache directory (safe beside a running mirror: SQLite arbitrates, files in use stay readable).
 */
export async function gcCommand(config: Config, opts: { dryRun: boolean; graceMs?: number; out: NodeJS.WritableStream }): Promise<GcReport> {
  const db = await openCacheDatabase(config.storage.dir);
  try {
    const { store, index } = openBlobStore(config.storage.dir, db, Date.now, config.storage.oss);
    if (!opts.dryRun) await reconcile(index, store, new ManifestStore(db, Date.now), pino({ level: 'silent' }));
    const report = await collectGarbage(db, store, { graceMs: opts.graceMs ?? config.storage.gc_grace, dryRun: opts.dryRun, now: Date.now });
    const verb = opts.dryRun ? 'would free' : 'freed';
    opts.out.write(
      `${verb} ${formatBytes(report.blobBytes + report.tempBytes)}: ${report.blobs} blob(s) (${formatBytes(report.blobBytes)}), ` +
        `${report.manifests} manifest(s), ${report.tempFiles} temp file(s) (${formatBytes(report.tempBytes)}), ${report.referrerLists} referrers list(s)` +
        `${report.inUse ? `; ${report.inUse} blob(s) kept because they are being read` : ''}\n`,
    );
    return report;
  } finally {
    db.close();
  }
}

