import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, mkdir, open, rename, rm, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { CacheLayout } from './layout.js';
import type { Db } from './db.js';

/** A committed blob opened for reading; the handle stays valid even if the file is removed meanwhile. */
export interface OpenBlob {
  size: number;
  handle: FileHandle;
}

/** A blob being written under tmp/; becomes visible only through BlobStore.commit. */
export interface TempBlob {
  path: string;
  handle: FileHandle;
}

/** Blobs on the local disk by digest. A file under blobs/ exists only if its content matched its digest. */
export class BlobStore {
  readonly #record;

  constructor(
    private readonly layout: CacheLayout,
    db: Db,
    private readonly now: () => number,
  ) {
    this.#record = db.prepare(
      `INSERT INTO blobs (digest, size, created_at, last_access) VALUES (?, ?, ?, ?)
       ON CONFLICT (digest) DO UPDATE SET size = excluded.size, last_access = excluded.last_access`,
    );
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
    try {
      const { size } = await handle.stat();
      return { size, handle };
    } catch (err) {
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
