import type { BlobSource } from '../cache/blob-download.js';
import type { ManifestAnswer } from '../upstream/client.js';
import type { UpstreamTarget } from './target.js';

/**
 * Where a blob or manifest-by-digest miss is fetched from when several replicas share the upstream downloads
 * (cluster/): the upstream itself, or the replica that owns the digest. Without it every miss goes upstream.
 */
export interface MissRouting {
  /** Whether a miss of digest goes to another member now (it owns the digest and did not just fail to answer). */
  forwards(digest: string): boolean;
  /** A blob miss's source: the owner first, then `upstream`, when forwarded; else `upstream` as given. */
  blobSource(target: UpstreamTarget, digest: string, upstream: BlobSource): BlobSource;
  /** A manifest by digest from its owner (bytes matching digest), or null: fetch it from the upstream. */
  manifest(target: UpstreamTarget, digest: string, accept: readonly string[]): Promise<ManifestAnswer | null>;
}
