import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { BlobInfo, BlobReader, BlobStore, BlobStoreEvents, BlobWriter, Leftover } from './blob-store.js';
import { BucketFaults } from './bucket-faults.js';
import type { FillSpace } from './fill-options.js';
import type { FsBlobStore } from './fs-blob-store.js';
import { CopyingReader, LocalCopy } from './local-copy.js';
import type { OssBlobStore } from './oss-blob-store.js';
import { TieredBlobWriter } from './tiered-blob-writer.js';

/** Names the bucket's leftovers among the disk's (whose names are paths under the cache directory). */
const BUCKET_MARK = 'bucket:';

export interface TieredStoreOptions {
  log: Logger;
  /**
   * Whether a writer of digest uploads to the bucket too (default: always); otherwise it writes the local disk only
   * unless shareWriter(digest) is called while it runs.
   */
  shareWrites?: (digest: string) => boolean;
  /** The clock of the bucket's rest after a failure (default Date.now). */
  now?: () => number;
}

/**
 * The local disk (storage.dir, bounded by storage.max_size) in front of the bucket that replicas share. Reads
 * try the disk first; a blob only in the bucket is streamed from there and copied to the disk as it passes
 * (verified first, one copy per digest at a time). A writer writes the disk once: its file is the spool the
 * bucket upload reads from, committed to the bucket first, then to the disk. Deletes and listings are the
 * disk's only, so eviction and gc never delete a blob from the bucket, and start-up reconciliation walks the
 * disk, not the bucket. Events are the disk's: the blob index describes the local copies. A bucket that fails
 * (OSS down, timing out, 5xx) never fails a request the disk or the upstream can answer: a lookup counts as a miss
 * (the fill goes to the upstream), a fill's upload is given up and the blob kept on the disk only; then the bucket
 * rests a while (BUCKET_REST_MS), asked by neither.
 */
export class TieredBlobStore extends EventEmitter<BlobStoreEvents> implements BlobStore {
  /** Copies from the bucket to the disk running now, by digest: each resolves once committed or given up. */
  readonly #copying = new Map<string, Promise<void>>();
  /** Writers that do not upload (shareWrites declined them), by digest, until they close. */
  readonly #localOnly = new Map<string, TieredBlobWriter>();
  #space: FillSpace | null = null;
  /** The bucket's failures and rest, shared with the manifests in the bucket (SharedManifests). */
  readonly bucketFaults: BucketFaults;

  constructor(
    readonly local: FsBlobStore,
    readonly shared: OssBlobStore,
    private readonly opts: TieredStoreOptions,
  ) {
    super();
    this.bucketFaults = new BucketFaults(opts.log, opts.now);
    local.on('commit', (blob) => this.emit('commit', blob));
    local.on('delete', (digest) => this.emit('delete', digest));
  }

  inUse(digest: string): boolean {
    return this.local.inUse(digest);
  }

  async stat(digest: string): Promise<{ size: number } | null> {
    return (await this.local.stat(digest)) ?? this.#fromBucket(digest, () => this.shared.stat(digest));
  }

  async open(digest: string): Promise<BlobReader | null> {
    const local = await this.local.open(digest);
    if (local) return local;
    const shared = await this.#fromBucket(digest, () => this.shared.open(digest));
    return shared && new CopyingReader(shared, () => this.#startCopy(digest, shared.size));
  }

  /** A bucket read; a bucket that fails (not a 404, already null) or rests is taken as not having the blob. */
  async #fromBucket<T>(digest: string, read: () => Promise<T | null>): Promise<T | null> {
    if (this.bucketFaults.resting) return null;
    try {
      return await read();
    } catch (err) {
      this.bucketFaults.failed('lookup', { digest }, err);
      return null;
    }
  }

  /** Copies to the disk reserve their size here first (the evictor under storage.max_size), as fills do. */
  reserveCopiesIn(space: FillSpace): void {
    this.#space = space;
  }

  #startCopy(digest: string, size: number): LocalCopy | null {
    if (this.#copying.has(digest)) return null;
    let settled!: () => void;
    this.#copying.set(digest, new Promise<void>((resolve) => (settled = resolve)).finally(() => this.#copying.delete(digest)));
    return new LocalCopy(digest, size, { local: this.local, space: this.#space }, this.opts.log, settled);
  }

  /** Resolves once the copies to the disk running now have ended (before the database closes). */
  async copiesEnded(): Promise<void> {
    await Promise.all(this.#copying.values());
  }

  async createWriter(digest: string): Promise<BlobWriter> {
    const local = await this.local.createWriter(digest);
    if (this.bucketFaults.resting) return local;
    const uploading = this.opts.shareWrites?.(digest) ?? true;
    const writer = new TieredBlobWriter(this.shared.writerOver(local, { uploading }), local, this.bucketFaults, () => {
      if (this.#localOnly.get(digest) === writer) this.#localOnly.delete(digest);
    });
    if (!uploading) this.#localOnly.set(digest, writer);
    return writer;
  }

  /**
   * The running writer of digest that writes the disk only (another member was fetching the blob for this replica)
   * uploads to the bucket too, the bytes it has already included: that member failed, this replica fetches the
   * blob itself, so nobody else will put it in the bucket.
   */
  shareWriter(digest: string): void {
    this.#localOnly.get(digest)?.shared.startUploading();
    this.#localOnly.delete(digest);
  }

  /** Removes the local copy only: the bucket keeps the blob. */
  delete(digest: string): Promise<boolean> {
    return this.local.delete(digest);
  }

  list(): AsyncIterable<BlobInfo> {
    return this.local.list();
  }

  /** The disk's leftovers and the bucket's dead multipart uploads (never a walk over the bucket's objects). */
  async leftovers(olderThan: number): Promise<Leftover[]> {
    const uploads = await this.shared.staleUploads(olderThan);
    return [...(await this.local.leftovers(olderThan)), ...uploads.map((u) => ({ ...u, name: BUCKET_MARK + u.name }))];
  }

  async removeLeftovers(leftovers: Leftover[]): Promise<void> {
    const inBucket = (l: Leftover) => l.name.startsWith(BUCKET_MARK);
    await this.local.removeLeftovers(leftovers.filter((l) => !inBucket(l)));
    await this.shared.removeLeftovers(leftovers.filter(inBucket).map((l) => ({ ...l, name: l.name.slice(BUCKET_MARK.length) })));
  }

  /**
   * The disk readied (its temp directory holds the writers' spool files too), then the bucket's dead uploads
   * aborted; a bucket that does not answer at start-up does not stop it: the mirror serves from the disk and the upstream.
   */
  async prepare(): Promise<void> {
    await this.local.prepare();
    await this.shared.abortStaleUploads().catch((err: unknown) => this.bucketFaults.failed('cleanup', {}, err));
  }

  /**
   * The disk: a fill commits there whatever the bucket does (a bucket that fails leaves the blob on the disk only),
   * so a bucket outage must not make the store look unwritable (prefetches would be dropped). The bucket is probed
   * on its own (`shared.probe()`, reported in /readyz).
   */
  probe(): Promise<void> {
    return this.local.probe();
  }

  /** A link into the bucket, for a blob the bucket has (not one only on the disk or in a running fill). */
  async presignedUrl(digest: string, ttlMs: number): Promise<string | null> {
    return (await this.#fromBucket(digest, () => this.shared.stat(digest))) ? this.shared.presignedUrl(digest, ttlMs) : null;
  }
}
