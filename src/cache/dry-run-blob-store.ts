import { EventEmitter } from 'node:events';
import type { BlobInfo, BlobReader, BlobStore, BlobStoreEvents, BlobWriter, Leftover } from './blob-store.js';

/**
 * A store that reads through to another and only pretends to remove: deletes are answered (and announced) as the
 * store would answer them, but nothing leaves it. A dry run of gc runs the real code against it, so it reports
 * exactly what a real run would free.
 */
export class DryRunBlobStore extends EventEmitter<BlobStoreEvents> implements BlobStore {
  readonly #deleted = new Set<string>();

  constructor(private readonly store: BlobStore) {
    super();
  }

  inUse(digest: string): boolean {
    return this.store.inUse(digest);
  }

  async stat(digest: string): Promise<{ size: number } | null> {
    return this.#deleted.has(digest) ? null : this.store.stat(digest);
  }

  async open(digest: string): Promise<BlobReader | null> {
    return this.#deleted.has(digest) ? null : this.store.open(digest);
  }

  createWriter(): Promise<BlobWriter> {
    return Promise.reject(writesNothing());
  }

  async delete(digest: string): Promise<boolean> {
    if (this.inUse(digest)) return false;
    this.#deleted.add(digest);
    this.emit('delete', digest);
    return true;
  }

  async *list(): AsyncIterable<BlobInfo> {
    for await (const blob of this.store.list()) if (!this.#deleted.has(blob.digest)) yield blob;
  }

  leftovers(olderThan: number): Promise<Leftover[]> {
    return this.store.leftovers(olderThan);
  }

  async removeLeftovers(): Promise<void> {}

  async prepare(): Promise<void> {}

  probe(): Promise<void> {
    return Promise.reject(writesNothing());
  }
}

const writesNothing = () => new Error('a dry run writes nothing');
