import { EventEmitter } from 'node:events';
import { pipeline, Readable, type Writable } from 'node:stream';
import type { BlobInfo, BlobRange, BlobReader, BlobStore, BlobStoreEvents, BlobWriter, Leftover } from './blob-store.js';
import { checkVerified, type VerifiedDigest } from './digest.js';
import { ReaderCounts } from './reader-counts.js';

/** Blobs in memory (unit tests): the same contract as the filesystem store, nothing durable. */
export class MemoryBlobStore extends EventEmitter<BlobStoreEvents> implements BlobStore {
  readonly #blobs = new Map<string, Buffer>();
  readonly #readers = new ReaderCounts();
  /** Written bytes of writers not committed or aborted yet. */
  readonly pending = new Set<MemoryBlobWriter>();

  inUse(digest: string): boolean {
    return this.#readers.inUse(digest);
  }

  async stat(digest: string): Promise<{ size: number } | null> {
    const blob = this.#blobs.get(digest);
    return blob ? { size: blob.length } : null;
  }

  async open(digest: string): Promise<BlobReader | null> {
    const blob = this.#blobs.get(digest);
    if (!blob) return null;
    const close = this.#readers.acquire(digest);
    const stream = (range?: BlobRange) => Readable.from([blob.subarray(range?.start ?? 0, (range?.end ?? blob.length - 1) + 1)]).once('close', close);
    return {
      size: blob.length,
      stream,
      sendTo: (out: Writable, range, onBytes) => pipeline(stream(range).on('data', (c: Buffer) => onBytes(c.length)), out, () => {}),
      close,
    };
  }

  async createWriter(digest: string): Promise<BlobWriter> {
    const writer = new MemoryBlobWriter(digest, {
      committed: (bytes) => {
        this.#blobs.set(digest, bytes);
        this.emit('commit', { digest, size: bytes.length });
      },
      finished: () => this.pending.delete(writer),
    });
    this.pending.add(writer);
    return writer;
  }

  async delete(digest: string): Promise<boolean> {
    if (this.inUse(digest)) return false;
    this.emit('delete', digest);
    this.#blobs.delete(digest);
    return true;
  }

  async *list(): AsyncIterable<BlobInfo> {
    for (const [digest, blob] of this.#blobs) yield { digest, size: blob.length };
  }

  /** Nothing outlives the process here. */
  async leftovers(): Promise<Leftover[]> {
    return [];
  }

  async removeLeftovers(): Promise<void> {}

  async prepare(): Promise<void> {}

  async probe(): Promise<void> {}
}

class MemoryBlobWriter implements BlobWriter {
  #bytes = Buffer.alloc(0);
  #end = 0;
  #state: 'open' | 'committed' | 'aborted' = 'open';

  constructor(
    readonly digest: string,
    private readonly tell: { committed(bytes: Buffer): void; finished(): void },
  ) {}

  async write(offset: number, bytes: Buffer | Buffer[]): Promise<void> {
    const data = Array.isArray(bytes) ? Buffer.concat(bytes) : bytes;
    const end = offset + data.length;
    if (end > this.#bytes.length) {
      const grown = Buffer.alloc(Math.max(end, this.#bytes.length * 2));
      this.#bytes.copy(grown);
      this.#bytes = grown;
    }
    data.copy(this.#bytes, offset);
    this.#end = Math.max(this.#end, end);
  }

  async read(buffer: Buffer, position: number): Promise<number> {
    return this.#bytes.copy(buffer, 0, position, Math.max(position, this.#end));
  }

  async park(): Promise<void> {}

  async commit(verified: VerifiedDigest): Promise<void> {
    if (this.#state !== 'open') throw new Error(`blob ${this.digest}: commit after ${this.#state}`);
    checkVerified(verified, this.digest, this.#end);
    this.#state = 'committed';
    this.tell.committed(Buffer.from(this.#bytes.subarray(0, this.#end)));
    this.tell.finished();
  }

  async abort(): Promise<void> {
    if (this.#state !== 'open') return;
    this.#state = 'aborted';
    this.tell.finished();
  }

  async close(): Promise<void> {
    await this.abort();
  }
}
