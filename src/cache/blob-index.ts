import type { BlobInfo, BlobStore } from './blob-store.js';
import type { Db } from './db.js';

/** The `blobs` table: which blobs the cache holds, their sizes and last access (eviction and gc decide on it). */
export class BlobIndex {
  readonly #record;
  readonly #adopt;
  readonly #forget;
  readonly #digests;
  readonly #totals;

  constructor(
    db: Db,
    private readonly now: () => number,
  ) {
    this.#record = db.prepare(
      `INSERT INTO blobs (digest, size, created_at, last_access) VALUES (?, ?, ?, ?)
       ON CONFLICT (digest) DO UPDATE SET size = excluded.size, last_access = excluded.last_access`,
    );
    this.#adopt = db.prepare('INSERT OR IGNORE INTO blobs (digest, size, created_at, last_access) VALUES (?, ?, ?, ?)');
    this.#forget = db.prepare('DELETE FROM blobs WHERE digest = ?');
    this.#digests = db.prepare<[], { digest: string }>('SELECT digest FROM blobs');
    this.#totals = db.prepare<[], { n: number; bytes: number | null }>('SELECT count(*) AS n, sum(size) AS bytes FROM blobs');
  }

  /** Keeps the table in step with store: a commit records its blob, a delete forgets it. */
  follow(store: BlobStore): this {
    store.on('commit', (blob) => this.record(blob));
    store.on('delete', (digest) => this.forget(digest));
    return this;
  }

  record(blob: BlobInfo): void {
    const now = this.now();
    this.#record.run(blob.digest, blob.size, now, now);
  }

  /** Records a blob found in the store without a row (reconcile); an existing row is left as it is. */
  adopt(blob: BlobInfo): void {
    const now = this.now();
    this.#adopt.run(blob.digest, blob.size, now, now);
  }

  forget(digest: string): void {
    this.#forget.run(digest);
  }

  digests(): Set<string> {
    return new Set(this.#digests.all().map((r) => r.digest));
  }

  totals(): { blobs: number; bytes: number } {
    const t = this.#totals.get()!;
    return { blobs: t.n, bytes: t.bytes ?? 0 };
  }
}
