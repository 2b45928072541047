import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { constants } from 'node:fs';
import { mkdir, open, readdir, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { isDigest } from '../oci/digest.js';
import type { BlobInfo, BlobReader, BlobStore, BlobStoreEvents, Leftover } from './blob-store.js';
import { ReadBuffers } from './fs-file-sender.js';
import { FsBlobReader, FsBlobWriter } from './fs-blob-io.js';
import type { CacheLayout } from './layout.js';
import { ReaderCounts } from './reader-counts.js';

/** Blobs on the local disk (see layout.ts): a file under blobs/ exists only if its content matched its digest. */
export class FsBlobStore extends EventEmitter<BlobStoreEvents> implements BlobStore {
  readonly #readers = new ReaderCounts();
  /** Temp files of this process's writers: never leftovers. */
  readonly #writing = new Set<string>();
  readonly #buffers = new ReadBuffers();

  constructor(private readonly layout: CacheLayout) {
    super();
  }

  inUse(digest: string): boolean {
    return this.#readers.inUse(digest);
  }

  async stat(digest: string): Promise<{ size: number } | null> {
    const info = await stat(this.layout.blobPath(digest)).catch(ifMissing(null));
    return info && { size: info.size };
  }

  async open(digest: string): Promise<BlobReader | null> {
    const handle = await open(this.layout.blobPath(digest), constants.O_RDONLY).catch(ifMissing(null));
    if (!handle) return null;
    const done = this.#readers.acquire(digest);
    try {
      const { size } = await handle.stat();
      return new FsBlobReader(handle, size, done, this.#buffers);
    } catch (err) {
      done();
      await handle.close();
      throw err;
    }
  }

  async createWriter(digest: string): Promise<FsBlobWriter> {
    const path = join(this.layout.tmp, `${digest.replace(':', '-')}.${randomBytes(6).toString('hex')}`);
    const handle = await open(path, 'wx+');
    this.#writing.add(path);
    return new FsBlobWriter(digest, path, handle, this.layout.blobPath(digest), {
      committed: (blob) => this.emit('commit', blob),
      closed: () => this.#writing.delete(path),
    });
  }

  async delete(digest: string): Promise<boolean> {
    if (this.inUse(digest)) return false;
    this.emit('delete', digest);
    await unlink(this.layout.blobPath(digest)).catch(ifMissing(undefined));
    return true;
  }

  /** Lists blobs/ (one stat per file, no reads); files not named for their place are strays (see leftovers). */
  async *list(): AsyncIterable<BlobInfo> {
    for await (const file of this.#blobFiles()) {
      if (file.stray) continue;
      const info = await stat(file.path).catch(ifMissing(null)); // evicted since the listing
      if (info) yield { digest: `sha256:${file.name}`, size: info.size };
    }
  }

  /** Temp files no writer of this process owns, and stray files in blobs/ (not named for their place). */
  async leftovers(olderThan: number): Promise<Leftover[]> {
    const candidates: string[] = [];
    for (const name of await readdir(this.layout.tmp).catch(() => [] as string[])) {
      const path = join(this.layout.tmp, name);
      if (!this.#writing.has(path)) candidates.push(path);
    }
    for await (const file of this.#blobFiles()) if (file.stray) candidates.push(file.path);
    const found: Leftover[] = [];
    for (const path of candidates) {
      const info = await stat(path).catch(() => null);
      if (info && info.mtimeMs < olderThan) found.push({ name: relative(this.layout.root, path), size: info.size });
    }
    return found;
  }

  async removeLeftovers(leftovers: Leftover[]): Promise<void> {
    for (const { name } of leftovers) await unlink(join(this.layout.root, name)).catch(() => {});
  }

  async *#blobFiles(): AsyncIterable<{ path: string; name: string; stray: boolean }> {
    const root = join(this.layout.blobs, 'sha256');
    for (const prefix of await readdir(root).catch(() => [] as string[])) {
      for (const name of await readdir(join(root, prefix)).catch(() => [] as string[])) {
        yield { path: join(root, prefix, name), name, stray: !isDigest(`sha256:${name}`) || name.slice(0, 2) !== prefix };
      }
    }
  }

  /** Creates the directories and removes fills left by an earlier process. */
  async prepare(): Promise<void> {
    await rm(this.layout.tmp, { recursive: true, force: true });
    await mkdir(this.layout.tmp, { recursive: true });
    await mkdir(this.layout.blobs, { recursive: true });
  }

  async probe(): Promise<void> {
    const path = join(this.layout.tmp, `.readyz-${randomBytes(4).toString('hex')}`);
    await writeFile(path, 'ok');
    await unlink(path);
  }
}

/** For .catch(): resolves with value when the file does not exist, rethrows anything else. */
function ifMissing<T>(value: T): (err: NodeJS.ErrnoException) => T {
  return (err) => {
    if (err.code === 'ENOENT') return value;
    throw err;
  };
}
