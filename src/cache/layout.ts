/**
 * The cache directory (storage.dir, data/ by default):
 *
 *   data/
 *     mirror.db                    SQLite (WAL): manifests (digest -> exact bytes + media type, last access),
 *                                  tags (upstream, repo, tag -> digest, checked_at), blobs (digest, size, last
 *                                  access), refs (manifest -> config/layer/child digests, for eviction),
 *                                  warm_jobs (admin warm jobs and their per-image status), tag_usage (hits)
 *     blobs/sha256/<2 hex>/<hex>   committed blobs; a file exists here only if its sha256 matched its name
 *     tmp/                         fills in progress; cleared at start-up
 */
import { join } from 'node:path';

export interface CacheLayout {
  root: string;
  database: string;
  blobs: string;
  tmp: string;
  blobPath(digest: string): string;
}

export function cacheLayout(root: string): CacheLayout {
  const blobs = join(root, 'blobs');
  return {
    root,
    database: join(root, 'mirror.db'),
    blobs,
    tmp: join(root, 'tmp'),
    blobPath(digest) {
      const [algorithm, hex] = digest.split(':') as [string, string];
      return join(blobs, algorithm, hex.slice(0, 2), hex);
    },
  };
}
