import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Db } from './db.js';
import type { CacheLayout } from './layout.js';
import type { ManifestStore } from './manifest-store.js';

export interface ReconcileReport {
  /** Rows whose file was gone: dropped (with the manifests that reference them). */
  droppedRows: number;
  /** Files without a row whose content matched their name: recorded. */
  adopted: number;
  /** Files without a row that were not a valid blob: removed. */
  removed: number;
}

/**
 * Makes the database and blobs/ agree after a crash or a manual change. It lists the blob directories (no reads)
 * and compares them with the rows read before the listing; only the files without a row are hashed. Safe beside
 * a running mirror: a blob committed after the row snapshot is hashed and recorded (it is valid), one evicted
 * after it is already gone from both.
 */
export async function reconcile(db: Db, layout: CacheLayout, manifests: ManifestStore, now: () => number, log: Logger): Promise<ReconcileReport> {
  const rows = new Set((db.prepare('SELECT digest FROM blobs').all() as { digest: string }[]).map((r) => r.digest));
  const root = join(layout.blobs, 'sha256');
  const onDisk = new Map<string, string>();
  for (const prefix of await readdir(root).catch(() => [] as string[])) {
    for (const name of await readdir(join(root, prefix)).catch(() => [] as string[])) onDisk.set(`sha256:${name}`, join(root, prefix, name));
  }
  const report: ReconcileReport = { droppedRows: 0, adopted: 0, removed: 0 };
  const forget = db.prepare('DELETE FROM blobs WHERE digest = ?');
  for (const digest of rows) {
    if (onDisk.has(digest)) continue;
    if (await exists(layout.blobPath(digest))) continue; // filled again since the listing
    forget.run(digest);
    manifests.dropReferencing(digest);
    report.droppedRows++;
  }
  const record = db.prepare('INSERT OR IGNORE INTO blobs (digest, size, created_at, last_access) VALUES (?, ?, ?, ?)');
  for (const [digest, path] of onDisk) {
    if (rows.has(digest)) continue;
    const hashed = await hashFile(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null; // evicted since the listing
      throw err;
    });
    if (!hashed) continue;
    const { hex, size } = hashed;
    if (/^sha256:[a-f0-9]{64}$/.test(digest) && `sha256:${hex}` === digest && path.endsWith(`${digest.slice(7, 9)}/${digest.slice(7)}`)) {
      record.run(digest, size, now(), now());
      report.adopted++;
    } else {
      await unlink(path);
      report.removed++;
    }
  }
  if (report.droppedRows || report.adopted || report.removed) log.warn(report, 'cache reconciled with the disk');
  return report;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function hashFile(path: string): Promise<{ hex: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { hex: hash.digest('hex'), size };
}
