import { once } from 'node:events';
import type { Logger } from 'pino';
import type { BlobIndex } from './blob-index.js';
import type { BlobStore } from './blob-store.js';
import { DigestHasher } from './digest.js';
import type { ManifestStore } from './manifest-store.js';

export interface ReconcileReport {
  /** Rows whose blob was gone: dropped (with the manifests that reference them). */
  droppedRows: number;
  /** Blobs without a row whose content matched their name: recorded. */
  adopted: number;
  /** Blobs without a row that were not valid: removed. */
  removed: number;
}

/**
 * Makes the database and the blob store agree after a crash or a manual change. It lists the store (no reads)
 * and compares it with the rows read before the listing; only the blobs without a row are hashed. Safe beside
 * a running mirror: a blob committed after the row snapshot is hashed and recorded (it is valid), one evicted
 * after it is already gone from both.
 */
export async function reconcile(index: BlobIndex, store: BlobStore, manifests: ManifestStore, log: Logger): Promise<ReconcileReport> {
  const rows = index.digests();
  const stored = new Map<string, number>();
  for await (const blob of store.list()) stored.set(blob.digest, blob.size);
  const report: ReconcileReport = { droppedRows: 0, adopted: 0, removed: 0 };
  for (const digest of rows) {
    if (stored.has(digest)) continue;
    if (await store.stat(digest)) continue; // filled again since the listing
    index.forget(digest);
    manifests.dropReferencing(digest);
    report.droppedRows++;
  }
  for (const [digest, size] of stored) {
    if (rows.has(digest)) continue;
    const verdict = await check(store, digest);
    if (verdict === 'gone') continue; // evicted since the listing
    if (verdict === 'valid') {
      index.adopt({ digest, size });
      report.adopted++;
    } else if (await store.delete(digest)) {
      report.removed++;
    }
  }
  if (report.droppedRows || report.adopted || report.removed) log.warn(report, 'cache reconciled with the disk');
  return report;
}

/** Hashes a stored blob and compares it with its name. */
async function check(store: BlobStore, digest: string): Promise<'valid' | 'invalid' | 'gone'> {
  const reader = await store.open(digest);
  if (!reader) return 'gone';
  const hasher = new DigestHasher(digest);
  const stream = reader.stream();
  const closed = once(stream, 'close').catch(() => {});
  try {
    for await (const chunk of stream) hasher.add(hasher.hashed, chunk as Buffer);
  } finally {
    await closed; // the reader is released: the blob may be deleted now
  }
  return 'verified' in hasher.verify() ? 'valid' : 'invalid';
}
