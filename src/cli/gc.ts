import { mkdir } from 'node:fs/promises';
import { pino } from 'pino';
import { formatBytes } from '../admin/format.js';
import { openBlobStore } from '../cache/cache.js';
import { openDatabase } from '../cache/db.js';
import { collectGarbage, type GcReport } from '../cache/gc.js';
import { cacheLayout } from '../cache/layout.js';
import { ManifestStore } from '../cache/manifest-store.js';
import { reconcile } from '../cache/reconcile.js';
import type { Config } from '../config/load.js';

/**
 * `acr-mirror gc`: reconciles the database with the disk, then removes unreferenced entries and stale temp files
 * from the cache directory (safe beside a running mirror: SQLite arbitrates, files in use stay readable).
 */
export async function gcCommand(config: Config, opts: { dryRun: boolean; graceMs?: number; out: NodeJS.WritableStream }): Promise<GcReport> {
  const layout = cacheLayout(config.storage.dir);
  await mkdir(layout.root, { recursive: true });
  const db = openDatabase(layout.database);
  try {
    const { store, index } = openBlobStore(layout.root, db, Date.now);
    if (!opts.dryRun) await reconcile(index, store, new ManifestStore(db, Date.now), pino({ level: 'silent' }));
    const report = await collectGarbage(db, store, { graceMs: opts.graceMs ?? config.storage.gc_grace, dryRun: opts.dryRun, now: Date.now });
    const verb = opts.dryRun ? 'would free' : 'freed';
    opts.out.write(
      `${verb} ${formatBytes(report.blobBytes + report.tempBytes)}: ${report.blobs} blob(s) (${formatBytes(report.blobBytes)}), ` +
        `${report.manifests} manifest(s), ${report.tempFiles} temp file(s) (${formatBytes(report.tempBytes)})` +
        `${report.inUse ? `; ${report.inUse} blob(s) kept because they are being read` : ''}\n`,
    );
    return report;
  } finally {
    db.close();
  }
}

