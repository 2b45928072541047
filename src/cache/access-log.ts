import type { Db } from './db.js';

/**
 * Last-access times of blobs and manifests, kept in memory and written to SQLite in one transaction every few
 * seconds (and before eviction decides, and at close), so a cache hit costs no synchronous database write.
 */
export class AccessLog {
  readonly #blobs = new Map<string, number>();
  readonly #manifests = new Map<string, number>();
  readonly #timer: NodeJS.Timeout;
  readonly #write;

  constructor(
    db: Db,
    private readonly now: () => number,
    flushEveryMs = 5000,
  ) {
    const blob = db.prepare('UPDATE blobs SET last_access = max(last_access, ?) WHERE digest = ?');
    const manifest = db.prepare('UPDATE manifests SET last_access = max(last_access, ?) WHERE digest = ?');
    this.#write = db.transaction((blobs: [string, number][], manifests: [string, number][]) => {
      for (const [digest, at] of blobs) blob.run(at, digest);
      for (const [digest, at] of manifests) manifest.run(at, digest);
    });
    this.#timer = setInterval(() => this.flush(), flushEveryMs);
    this.#timer.unref();
  }

  blob(digest: string): void {
    this.#blobs.set(digest, this.now());
  }

  manifest(digest: string): void {
    this.#manifests.set(digest, this.now());
  }

  flush(): void {
    if (this.#blobs.size === 0 && this.#manifests.size === 0) return;
    const blobs = [...this.#blobs];
    const manifests = [...this.#manifests];
    this.#blobs.clear();
    this.#manifests.clear();
    this.#write(blobs, manifests);
  }

  close(): void {
    clearInterval(this.#timer);
    this.flush();
  }
}
