import type { Db } from '../cache/db.js';

interface Pending {
  upstream: string;
  repo: string;
  tag: string;
  hits: number;
  last: number;
}

/**
 * How often each tag is asked for and when last: counted in memory and written to SQLite in one transaction every
 * few seconds (and before it is read, and at close), so a manifest request costs no database write.
 */
export class TagUsage {
  readonly #pending = new Map<string, Pending>();
  readonly #timer: NodeJS.Timeout;
  readonly #write;
  readonly #forget;

  constructor(
    db: Db,
    private readonly now: () => number,
    flushEveryMs = 5000,
  ) {
    const upsert = db.prepare(
      `INSERT INTO tag_usage (upstream, repo, tag, hits, last_pulled) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (upstream, repo, tag) DO UPDATE SET hits = hits + excluded.hits, last_pulled = max(last_pulled, excluded.last_pulled)`,
    );
    this.#write = db.transaction((rows: Pending[]) => {
      for (const r of rows) upsert.run(r.upstream, r.repo, r.tag, r.hits, r.last);
    });
    this.#forget = db.prepare('DELETE FROM tag_usage WHERE upstream = ? AND repo = ? AND tag = ?');
    this.#timer = setInterval(() => this.flush(), flushEveryMs);
    this.#timer.unref();
  }

  /** A client asked for upstream/repo:tag. */
  record(upstream: string, repo: string, tag: string): void {
    const key = `${upstream}\n${repo}\n${tag}`;
    const entry = this.#pending.get(key);
    if (entry) {
      entry.hits++;
      entry.last = this.now();
    } else {
      this.#pending.set(key, { upstream, repo, tag, hits: 1, last: this.now() });
    }
  }

  /** Drops the counts of a tag removed from the cache. */
  forget(upstream: string, repo: string, tag: string): void {
    this.#pending.delete(`${upstream}\n${repo}\n${tag}`);
    this.#forget.run(upstream, repo, tag);
  }

  flush(): void {
    if (this.#pending.size === 0) return;
    const rows = [...this.#pending.values()];
    this.#pending.clear();
    this.#write(rows);
  }

  close(): void {
    clearInterval(this.#timer);
    this.flush();
  }
}
