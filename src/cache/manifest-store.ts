import { LRUCache } from 'lru-cache';
import { manifestContent, referencedDigests } from '../oci/manifest.js';
import type { Db } from './db.js';

const HOT_TTL_MS = 30_000;

export interface StoredManifest {
  digest: string;
  mediaType: string;
  size: number;
  body: Buffer;
}

export interface TagEntry {
  digest: string;
  checkedAt: number;
}

/** Manifests by digest (exact upstream bytes) and tag -> digest mappings per upstream repository. */
export class ManifestStore {
  /**
   * Recently used manifests. Entries are read again from SQLite after HOT_TTL_MS, so a manifest that
   * `acr-mirror gc` removed from another process stops being served from memory within that time.
   */
  readonly #hot: LRUCache<string, StoredManifest>;
  /**
   * Recent tag lookups, so a tag asked for thousands of times a second costs no SQLite read. Writes here keep it
   * exact; the short TTL bounds how long a tag written by another process (acr-mirror import) goes unseen.
   */
  readonly #tags = new LRUCache<string, TagEntry>({ max: 10_000, ttl: 2000 });
  readonly #stmt;

  constructor(
    private readonly db: Db,
    private readonly now: () => number,
    hotBytes = 64 * 1024 * 1024,
  ) {
    // ttlResolution 0: ages are read from `now` on every lookup (lru-cache otherwise reuses one reading for 1 ms of
    // timers, which an injected clock does not advance).
    this.#hot = new LRUCache({ maxSize: hotBytes, sizeCalculation: (m) => Math.max(1, m.size), ttl: HOT_TTL_MS, ttlResolution: 0, perf: { now } });
    this.#stmt = {
      get: db.prepare<[string], { digest: string; media_type: string; size: number; body: Buffer }>(
        'SELECT digest, media_type, size, body FROM manifests WHERE digest = ?',
      ),
      put: db.prepare('INSERT OR IGNORE INTO manifests (digest, media_type, size, body, created_at, last_access) VALUES (?, ?, ?, ?, ?, ?)'),
      putRef: db.prepare('INSERT OR IGNORE INTO refs (manifest, child) VALUES (?, ?)'),
      getTag: db.prepare<[string, string, string], { digest: string; checked_at: number }>(
        'SELECT digest, checked_at FROM tags WHERE upstream = ? AND repo = ? AND tag = ?',
      ),
      setTag: db.prepare(
        `INSERT INTO tags (upstream, repo, tag, digest, checked_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (upstream, repo, tag) DO UPDATE SET digest = excluded.digest, checked_at = excluded.checked_at`,
      ),
      deleteTag: db.prepare('DELETE FROM tags WHERE upstream = ? AND repo = ? AND tag = ?'),
      listTags: db.prepare<[string, string], { tag: string }>('SELECT tag FROM tags WHERE upstream = ? AND repo = ? ORDER BY tag'),
      referencing: db.prepare<[string], { digest: string }>(
        `WITH RECURSIVE up(digest) AS (
           SELECT manifest FROM refs WHERE child = ?
           UNION SELECT r.manifest FROM refs r JOIN up ON r.child = up.digest
         ) SELECT digest FROM up`,
      ),
      deleteTagsOf: db.prepare('DELETE FROM tags WHERE digest = ?'),
      deleteManifest: db.prepare('DELETE FROM manifests WHERE digest = ?'),
    };
  }

  get(digest: string): StoredManifest | null {
    const hot = this.#hot.get(digest);
    if (hot) return hot;
    const row = this.#stmt.get.get(digest);
    if (!row) return null;
    const m = { digest: row.digest, mediaType: row.media_type, size: row.size, body: row.body };
    this.#hot.set(digest, m);
    return m;
  }

  /** Stores a manifest verified against its digest, with the digests it references (for eviction). */
  put(m: StoredManifest): void {
    const children = childDigests(m);
    this.db.transaction(() => {
      const now = this.now();
      this.#stmt.put.run(m.digest, m.mediaType, m.size, m.body, now, now);
      for (const child of children) this.#stmt.putRef.run(m.digest, child);
    })();
    this.#hot.set(m.digest, m);
  }

  getTag(upstream: string, repo: string, tag: string): TagEntry | null {
    const key = tagKey(upstream, repo, tag);
    const known = this.#tags.get(key);
    if (known) return known;
    const row = this.#stmt.getTag.get(upstream, repo, tag);
    if (!row) return null;
    const entry = { digest: row.digest, checkedAt: row.checked_at };
    this.#tags.set(key, entry);
    return entry;
  }

  /** Records that tag pointed at digest when checked (by default now). The manifest must be stored already. */
  setTag(upstream: string, repo: string, tag: string, digest: string, checkedAt = this.now()): void {
    this.#stmt.setTag.run(upstream, repo, tag, digest, checkedAt);
    this.#tags.set(tagKey(upstream, repo, tag), { digest, checkedAt });
  }

  deleteTag(upstream: string, repo: string, tag: string): void {
    this.#stmt.deleteTag.run(upstream, repo, tag);
    this.#tags.delete(tagKey(upstream, repo, tag));
  }

  /**
   * Drops every manifest that references digest, directly or through an index, with the tags pointing at
   * them: after a blob is evicted no cached tag or manifest may lead a client to it. Returns what was dropped.
   */
  dropReferencing(digest: string): string[] {
    return this.db.transaction(() => {
      const doomed = this.#stmt.referencing.all(digest).map((r) => r.digest);
      for (const d of doomed) {
        this.#stmt.deleteTagsOf.run(d);
        this.#stmt.deleteManifest.run(d);
        this.#hot.delete(d);
      }
      if (doomed.length > 0) this.#tags.clear();
      return doomed;
    })();
  }

  listTags(upstream: string, repo: string): string[] {
    return this.#stmt.listTags.all(upstream, repo).map((r) => r.tag);
  }
}

function tagKey(upstream: string, repo: string, tag: string): string {
  return `${upstream}\n${repo}\n${tag}`;
}

/** Digests a manifest or index points at, for reference-aware eviction; none for a body without descriptors. */
function childDigests(m: StoredManifest): string[] {
  const content = manifestContent(m.body, m.digest);
  return content ? referencedDigests(content) : [];
}
