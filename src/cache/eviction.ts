import type { Logger } from 'pino';
import type { AccessLog } from './access-log.js';
import type { BlobStore } from './blob-store.js';
import type { FillSpace } from './fill-options.js';
import type { Db } from './db.js';
import type { ManifestStore } from './manifest-store.js';
import { once } from '../util/once.js';

export interface EvictionOptions {
  /** Bytes of blobs the cache may hold. */
  maxBytes: number;
  /** Eviction frees down to this fraction of maxBytes, so it does not run on every commit. */
  lowWatermark: number;
  log: Logger;
  /** The blobs stay readable behind the local copies evicted (the bucket): the manifests referencing them stay too. */
  keepsManifests?: boolean;
  onEvicted?: (blobs: number, bytes: number, manifests: number) => void;
}

interface Candidate {
  digest: string;
  size: number;
}

/**
 * Keeps committed blobs under storage.max_size. Least recently used first, reference-aware: a blob's recency is
 * the later of its own last access and that of the most recently served manifest referencing it, so layers of
 * images in use go last. Blobs being read are skipped. Manifests (and their tags) that reference an evicted
 * blob are dropped with it, so no cached tag points at missing layers; they are fetched again on demand.
 *
 * Running fills reserve their announced size first: their bytes count with the committed ones, so the cache and
 * its temp files together stay under the limit.
 */
export class Evictor implements FillSpace {
  #total: number;
  #reserved = 0;
  #running: Promise<void> | null = null;
  readonly #candidates;

  constructor(
    db: Db,
    private readonly blobs: BlobStore,
    private readonly manifests: ManifestStore,
    private readonly access: AccessLog,
    private readonly opts: EvictionOptions,
  ) {
    this.#total = (db.prepare('SELECT coalesce(sum(size), 0) AS bytes FROM blobs').get() as { bytes: number }).bytes;
    this.#candidates = db.prepare<[number, number], Candidate>(
      `SELECT b.digest, b.size FROM blobs b
         LEFT JOIN refs r ON r.child = b.digest
         LEFT JOIN manifests m ON m.digest = r.manifest
       GROUP BY b.digest
       ORDER BY max(b.last_access, coalesce(max(m.last_access), 0)) ASC, b.digest
       LIMIT ? OFFSET ?`,
    );
  }

  get totalBytes(): number {
    return this.#total;
  }

  get maxBytes(): number {
    return this.opts.maxBytes;
  }

  /** Committed bytes plus those reserved by running fills. */
  get #used(): number {
    return this.#total + this.#reserved;
  }

  /**
   * Reserves size bytes for a fill about to write them, evicting to make room if needed. Null (nothing reserved)
   * when they cannot fit: larger than the limit, or the blobs that would have to go are being read.
   */
  async reserve(size: number): Promise<(() => void) | null> {
    if (size > this.opts.maxBytes) return null;
    this.#reserved += size;
    const release = once(() => (this.#reserved -= size));
    // A run already under way may have passed its last check before this reservation: then one more.
    for (let runs = 0; runs < 2 && this.#used > this.opts.maxBytes; runs++) await this.evict();
    if (this.#used <= this.opts.maxBytes) return release;
    release();
    return null;
  }

  /** Records a committed blob; starts eviction when the cache went over its limit. */
  added(size: number): void {
    this.#total += size;
    if (this.#total > this.opts.maxBytes) void this.evict();
  }

  /** Frees space down to the low watermark; one run at a time. Resolves when done. */
  evict(): Promise<void> {
    this.#running ??= this.#evict().finally(() => (this.#running = null));
    return this.#running;
  }

  async #evict(): Promise<void> {
    this.access.flush();
    const target = this.opts.maxBytes * this.opts.lowWatermark;
    let blobs = 0;
    let bytes = 0;
    let manifests = 0;
    let skipped = 0;
    while (this.#used > target) {
      const batch = this.#candidates.all(100, skipped);
      if (batch.length === 0) break;
      for (const c of batch) {
        if (this.#used <= target) break;
        if (this.blobs.inUse(c.digest)) {
          skipped++;
          continue;
        }
        // the manifests and tags leading to the blob go first, so none ever points at a missing layer
        if (!this.opts.keepsManifests) manifests += this.manifests.dropReferencing(c.digest).length;
        await this.blobs.delete(c.digest);
        this.#total -= c.size;
        blobs++;
        bytes += c.size;
      }
    }
    if (blobs > 0) {
      this.opts.onEvicted?.(blobs, bytes, manifests);
      this.opts.log.info({ blobs, bytes, manifests, cacheBytes: this.#total, maxBytes: this.opts.maxBytes }, 'evicted least recently used blobs');
    }
    if (this.#total > this.opts.maxBytes) {
      this.opts.log.warn({ cacheBytes: this.#total, maxBytes: this.opts.maxBytes, inUse: skipped }, 'cache over its limit: the remaining blobs are being read');
    }
  }
}
