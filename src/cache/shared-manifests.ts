import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { BucketFaults } from './bucket-faults.js';
import { SingleFlight } from '../util/single-flight.js';
import type { ManifestStore, StoredManifest } from './manifest-store.js';
import { type OssManifestStore, WrongSharedObject } from './oss-manifest-store.js';

export interface SharedTagFound {
  manifest: StoredManifest;
  /** When a replica last checked the tag with the upstream. */
  checkedAt: number;
}

type LogFields = Record<string, string>;

/**
 * The bucket's manifests and tags as a level every replica shares, under each replica's own SQLite: what this
 * replica misses in SQLite is looked for there (and kept in SQLite when found), and what it learns from the upstream
 * is written there in the background. A bucket that fails counts as a miss (logged at warn, once a minute: see
 * BucketFaults) and starts its rest, during which lookups do not ask it: the upstream is still asked, and a
 * client's request never fails because of the bucket.
 */
export class SharedManifests {
  readonly #lookups = new SingleFlight<string, StoredManifest | null>();
  readonly #tagLookups = new SingleFlight<string, SharedTagFound | null>();
  readonly #manifestWrites = new SingleFlight<string, void>();
  /** Manifests this process read from or wrote to the bucket: a tag write does not put them again. */
  readonly #inBucket = new LRUCache<string, true>({ max: 10_000 });
  /** Manifests whose object did not match its digest: the next write replaces the object instead of keeping it. */
  readonly #wrong = new LRUCache<string, true>({ max: 1000 });
  readonly #writes = new Set<Promise<void>>();

  constructor(
    private readonly bucket: OssManifestStore,
    private readonly local: ManifestStore,
    private readonly opts: { log: Logger; now: () => number; faults: BucketFaults },
  ) {}

  /** A manifest by digest from the bucket, kept in SQLite; null if the bucket has none that may be served. */
  manifest(digest: string): Promise<StoredManifest | null> {
    return this.#lookups.run(digest, async () => {
      const found = await this.#lookup(() => this.bucket.manifest(digest), { digest }, () => this.#wrong.set(digest, true));
      if (!found) return null;
      this.#inBucket.set(digest, true);
      this.#keep(() => this.local.put(found), { digest });
      return found;
    });
  }

  /**
   * A tag from the bucket with its manifest (from SQLite or the bucket), kept in SQLite as checked when the bucket
   * says (never later than now: replicas' clocks differ), so tag_ttl runs from the check of whichever replica made it.
   */
  tag(upstream: string, repo: string, tag: string): Promise<SharedTagFound | null> {
    return this.#tagLookups.run(`${upstream}\n${repo}\n${tag}`, async () => {
      const fields = { upstream, repo, ref: tag };
      const record = await this.#lookup(() => this.bucket.tag(upstream, repo, tag), fields);
      const manifest = record && (this.local.get(record.digest) ?? (await this.manifest(record.digest)));
      if (!record || !manifest) return null;
      const checkedAt = Math.min(record.checkedAt, this.opts.now());
      this.#keep(() => this.local.setTag(upstream, repo, tag, manifest.digest, checkedAt), { ...fields, digest: manifest.digest });
      return { manifest, checkedAt };
    });
  }

  /** A manifest fetched from the upstream goes to the bucket, in the background. */
  fetched(m: StoredManifest): void {
    this.#background(() => this.#putManifest(m), { digest: m.digest });
  }

  /** The upstream said what a tag points at: its manifest (unless known to be there), then the tag object. */
  tagChecked(upstream: string, repo: string, tag: string, m: StoredManifest, checkedAt: number): void {
    this.#background(
      async () => {
        await this.#putManifest(m);
        await this.bucket.putTag(upstream, repo, tag, { digest: m.digest, mediaType: m.mediaType, checkedAt });
      },
      { upstream, repo, ref: tag, digest: m.digest },
    );
  }

  /** The upstream says a tag does not exist: other replicas stop finding it in the bucket. */
  tagGone(upstream: string, repo: string, tag: string): void {
    this.#background(() => this.bucket.deleteTag(upstream, repo, tag), { upstream, repo, ref: tag });
  }

  /** Resolves once every bucket write started so far has ended. */
  async settled(): Promise<void> {
    while (this.#writes.size > 0) await Promise.allSettled([...this.#writes]);
  }

  #putManifest(m: StoredManifest): Promise<void> {
    if (this.#inBucket.has(m.digest)) return Promise.resolve();
    return this.#manifestWrites.run(m.digest, async () => {
      await this.bucket.putManifest(m, this.#wrong.has(m.digest));
      this.#wrong.delete(m.digest);
      this.#inBucket.set(m.digest, true);
    });
  }

  async #lookup<T>(read: () => Promise<T | null>, fields: LogFields, onWrong?: () => void): Promise<T | null> {
    if (this.opts.faults.resting) return null;
    try {
      return await read();
    } catch (err) {
      if (err instanceof WrongSharedObject) {
        onWrong?.();
        this.opts.log.warn({ ...fields, key: err.key, reason: err.message }, 'wrong object in the bucket: ignored, not served');
      } else {
        this.opts.faults.failed('lookup', fields, err);
      }
      return null;
    }
  }

  #keep(write: () => void, fields: LogFields): void {
    try {
      write();
    } catch (err) {
      // A full or read-only cache must not stop the mirror from serving what the bucket had.
      this.opts.log.error({ ...fields, err: (err as Error).message }, 'found in the bucket but not kept: the database could not be written');
    }
  }

  #background(write: () => Promise<void>, fields: LogFields): void {
    const running: Promise<void> = write()
      .catch((err: unknown) => this.opts.log.warn({ ...fields, err: (err as Error).message }, 'bucket not written; the client was answered'))
      .finally(() => this.#writes.delete(running));
    this.#writes.add(running);
  }
}
