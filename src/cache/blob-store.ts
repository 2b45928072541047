import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, mkdir, open, rename, rm, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { CacheLayout } from './layout.js';
import type { Db } from './db.js';

/**
 * A committed blob opened for reading. While it is open, eviction leaves the blob alone; call done() once
 * when finished with it (after closing the handle, or once a stream over it has closed).
 */
export interface OpenBlob {
  size: number;
  handle: FileHandle;
  done(): void;
}

/** A blob being written under tmp/; becomes visible only through BlobStore.commit. */
export interface TempBlob {
  path: string;
  handle: FileHandle;
}

/** Blobs on the local disk by digest. A file under blobs/ exists only if its content matched its digest. */
export class BlobStore {
  readonly #record;
  readonly #forget;
  /** Readers per digest right now. */
  readonly #readers = new Map<string, number>();
  /** Told of every committed blob (eviction keeps its running total from this). */
  onCommit: (digest: string, size: number) => void = () => {};

  constructor(
    private readonly layout: CacheLayout,
    db: Db,
    private readonly now: () => number,
  ) {
    this.#record = db.prepare(
      `INSERT INTO blobs (digest, size, created_at, last_access) VALUES (?, ?, ?, ?)
       ON CONFLICT (digest) DO UPDATE SET size = excluded.size, last_access = excluded.last_access`,
    );
    this.#forget = db.prepare('DELETE FROM blobs WHERE digest = ?');
  }

  /** Whether a client is reading the blob now. */
  inUse(digest: string): boolean {
    return (this.#readers.get(digest) ?? 0) > 0;
  }

  /** Removes a committed blob's file and row. Returns false (and removes nothing) while it is being read. */
  async delete(digest: string): Promise<boolean> {
    if (this.inUse(digest)) return false;
    this.#forget.run(digest);
    await unlink(this.layout.blobPath(digest)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    return true;
  }

  /** Creates the directories and removes fills left by an earlier process. */
  async prepare(): Promise<void> {
    await rm(this.layout.tmp, { recursive: true, force: true });
    await mkdir(this.layout.tmp, { recursive: true });
    await mkdir(this.layout.blobs, { recursive: true });
  }

  async open(digest: string): Promise<OpenBlob | null> {
    let handle: FileHandle;
    try {
      handle = await open(this.layout.blobPath(digest), constants.O_RDONLY);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    this.#readers.set(digest, (this.#readers.get(digest) ?? 0) + 1);
    let finished = false;
    const done = () => {
      if (finished) return;
      finished = true;
      const n = (this.#readers.get(digest) ?? 1) - 1;
      if (n > 0) this.#readers.set(digest, n);
      else this.#readers.delete(digest);
    };
    try {
      const { size } = await handle.stat();
      return { size, handle, done };
    } catch (err) {
      done();
      await handle.close();
      throw err;
    }
  }

  async createTemp(digest: string): Promise<TempBlob> {
    const path = join(this.layout.tmp, `${digest.replace(':', '-')}.${randomBytes(6).toString('hex')}`);
    const handle = await open(path, 'wx+');
    return { path, handle };
  }

  /** Makes a verified temp blob durable and visible: fsync, rename into place, fsync the directory. */
  async commit(temp: TempBlob, digest: string, size: number): Promise<void> {
    await temp.handle.sync();
    const target = this.layout.blobPath(digest);
    await mkdir(dirname(target), { recursive: true });
    await rename(temp.path, target);
    await syncDirectory(dirname(target));
    const now = this.now();
    this.#record.run(digest, size, now, now);
    this.onCommit(digest, size);
  }

  async discard(temp: TempBlob): Promise<void> {
    await unlink(temp.path).catch(() => {});
  }
}

async function syncDirectory(path: string): Promise<void> {
  const dir = await open(path, constants.O_RDONLY);
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
