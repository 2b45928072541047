import type { Logger } from 'pino';
import { isDigest } from '../oci/digest.js';
import type { BucketLease } from './bucket-lease.js';
import type { OssObjects } from './oss-objects.js';

export interface BucketEvictionOptions {
  objects: OssObjects;
  lease: BucketLease;
  /** The configured key prefix ("" or ending in /); blobs are <prefix>blobs/sha256/<hex>. */
  prefix: string;
  maxBytes: number;
  /** Eviction frees down to this fraction of maxBytes. */
  lowWatermark: number;
  /** Blobs used or written within this long are kept even over the limit (an image being pulled right now). */
  minAgeMs: number;
  /** The last use this replica saw of the blob or of a manifest referencing it (ms), if it knows the blob. */
  lastUse: (digest: string) => number | undefined;
  now: () => number;
  log: Logger;
  onEvicted?: (blobs: number, bytes: number) => void;
}

interface BucketBlob {
  digest: string;
  key: string;
  size: number;
  lastModified: number;
}

/**
 * Keeps the bucket's blobs under storage.oss.max_size, run by whichever replica holds the evictor lease. The
 * bucket has no access times: a blob's recency is the later of its object's LastModified (its commit) and the
 * last use the lease holder saw of it or of a manifest referencing it; the least recent go first, never one more
 * recent than minAgeMs. A replica that then finds a blob gone treats it as a miss and fetches it again.
 */
export class BucketEviction {
  #stopped = false;

  constructor(private readonly opts: BucketEvictionOptions) {}

  /** Ends a round under way after its current delete, and any later one before it starts. */
  stop(): void {
    this.#stopped = true;
  }

  /** One round: nothing unless this replica holds (or takes) the lease and the bucket is over the limit. */
  async run(): Promise<{ blobs: number; bytes: number }> {
    const freed = { blobs: 0, bytes: 0 };
    if (this.#stopped || !(await this.opts.lease.acquire())) return freed;
    const blobs = await this.#blobs();
    let total = blobs.reduce((sum, b) => sum + b.size, 0);
    if (total <= this.opts.maxBytes) return freed;
    const target = this.opts.maxBytes * this.opts.lowWatermark;
    const youngest = this.opts.now() - this.opts.minAgeMs;
    // Recency (a database lookup per blob) only once the bucket is over its limit.
    const byRecency = blobs.map((b) => ({ ...b, recency: Math.max(b.lastModified, this.opts.lastUse(b.digest) ?? 0) }));
    for (const blob of byRecency.sort((a, b) => a.recency - b.recency || a.digest.localeCompare(b.digest))) {
      if (total <= target || blob.recency > youngest) break;
      if (this.#stopped || !this.opts.lease.holds()) break; // the lease ran out mid-round: another replica may be evicting now
      await this.opts.objects.delete(blob.key);
      total -= blob.size;
      freed.blobs++;
      freed.bytes += blob.size;
    }
    if (freed.blobs > 0) {
      this.opts.onEvicted?.(freed.blobs, freed.bytes);
      this.opts.log.info({ ...freed, bucketBytes: total, maxBytes: this.opts.maxBytes }, 'evicted blobs from the bucket');
    }
    return freed;
  }

  async #blobs(): Promise<BucketBlob[]> {
    const dir = `${this.opts.prefix}blobs/sha256/`;
    const blobs: BucketBlob[] = [];
    for await (const o of this.opts.objects.list(dir)) {
      const digest = `sha256:${o.key.slice(dir.length)}`;
      if (!isDigest(digest)) continue;
      blobs.push({ digest, key: o.key, size: o.size, lastModified: o.lastModified });
    }
    return blobs;
  }
}
