import { pipeline, type Readable, Transform, type Writable } from 'node:stream';
import type { Logger } from 'pino';
import type { BlobRange, BlobReader, BlobStore, BlobWriter } from './blob-store.js';
import { DigestHasher } from './digest.js';
import { type FillSpace, NO_ROOM } from './fill-options.js';

/**
 * Bytes passed on to the consumer before the disk has written them. Chunks that arrive while a write is under way
 * go to disk together in the next writev, so the reader waits for the disk only when it falls this far behind,
 * not once per network chunk.
 */
const MAX_UNWRITTEN_BYTES = 8 * 1024 * 1024;

/**
 * A copy into the local store of a blob read from the bucket. The bytes are hashed as they pass and committed
 * only if they match the digest: the bucket's bytes are not trusted blindly. Failures never reach the reader
 * the bytes come from; they leave nothing behind.
 */
export class LocalCopy {
  readonly #hasher: DigestHasher;
  readonly #writer: Promise<BlobWriter>;
  #releaseSpace: (() => void) | null = null;
  #failed = false;
  #queue: Buffer[] = [];
  #unwritten = 0;
  #written = 0;
  /** The loop writing the queue out, while there is one; it never rejects. */
  #writing: Promise<void> | null = null;

  constructor(
    private readonly digest: string,
    size: number,
    to: { local: BlobStore; space: FillSpace | null },
    private readonly log: Logger,
    /** Told once the copy was committed or given up. */
    private readonly settled: () => void,
  ) {
    this.#hasher = new DigestHasher(digest);
    this.#writer = this.#open(size, to.local, to.space);
    this.#writer.catch((err: unknown) => this.#fail(err));
  }

  /** A writer, once the size is reserved against storage.max_size like a fill's. */
  async #open(size: number, local: BlobStore, space: FillSpace | null): Promise<BlobWriter> {
    if (space) {
      this.#releaseSpace = await space.reserve(size);
      if (!this.#releaseSpace) throw new Error(NO_ROOM);
    }
    return local.createWriter(this.digest);
  }

  /** Adds the next bytes of the blob (in order); resolves once the bytes not yet on disk are few enough. */
  add(chunk: Buffer): Promise<void> {
    if (this.#failed) return Promise.resolve();
    this.#hasher.add(this.#hasher.hashed, chunk);
    this.#queue.push(chunk);
    this.#unwritten += chunk.length;
    this.#writing ??= this.#drain();
    return this.#unwritten < MAX_UNWRITTEN_BYTES ? Promise.resolve() : this.#writing;
  }

  /** Writes what is queued, all of it in one writev, until the queue stays empty. */
  async #drain(): Promise<void> {
    try {
      const writer = await this.#writer;
      while (this.#queue.length > 0 && !this.#failed) {
        const parts = this.#queue;
        const bytes = parts.reduce((n, part) => n + part.length, 0);
        this.#queue = [];
        await writer.write(this.#written, parts);
        this.#written += bytes;
        this.#unwritten -= bytes;
      }
    } catch (err) {
      this.#fail(err);
    } finally {
      this.#writing = null;
    }
  }

  /** Every byte was added: commits them if they match the digest; either way releases the writer. */
  async finish(): Promise<void> {
    await this.#writing;
    if (this.#failed) return this.abandon();
    const result = this.#hasher.verify();
    try {
      const writer = await this.#writer;
      if ('verified' in result) await writer.commit(result.verified);
      else this.log.error({ digest: this.digest, actual: result.actual, size: this.#hasher.hashed }, 'blob in the bucket does not match its digest: no local copy kept');
    } catch (err) {
      this.#fail(err);
    }
    await this.abandon();
  }

  /** Stops the copy; what was written is removed unless it was committed. */
  async abandon(): Promise<void> {
    this.#queue = [];
    await this.#writing;
    await (await this.#writer.catch(() => null))?.close().catch(() => {});
    this.#releaseSpace?.();
    this.settled();
  }

  #fail(err: unknown): void {
    this.#queue = [];
    if (!this.#failed) this.log.warn({ digest: this.digest, err: (err as Error).message }, 'could not keep a local copy of a blob read from the bucket');
    this.#failed = true;
  }
}

/**
 * A bucket reader whose whole-blob stream is also copied into the local store as it passes (ranges are not: the
 * copy needs every byte). The copy follows the consumer; if the consumer goes away early, the copy is abandoned.
 * startCopy gives null when the blob is being copied already.
 */
export class CopyingReader implements BlobReader {
  #used = false;

  constructor(
    private readonly bucket: BlobReader,
    private readonly startCopy: () => LocalCopy | null,
  ) {}

  get size(): number {
    return this.bucket.size;
  }

  stream(range?: BlobRange): Readable {
    const copy = this.#claim(range);
    return copy ? this.#copied(copy, () => {}) : this.bucket.stream(range);
  }

  sendTo(out: Writable, range: BlobRange | undefined, onBytes: (n: number) => void): void {
    const copy = this.#claim(range);
    if (copy) pipeline(this.#copied(copy, onBytes), out, () => {});
    else this.bucket.sendTo(out, range, onBytes);
  }

  close(): void {
    if (!this.#used) this.bucket.close();
    this.#used = true;
  }

  #claim(range: BlobRange | undefined): LocalCopy | null {
    this.#used = true;
    const whole = !range || (range.start === 0 && range.end >= this.size - 1);
    return whole ? this.startCopy() : null;
  }

  /** The whole blob from the bucket, each chunk passed on once the copy has written it. */
  #copied(copy: LocalCopy, onBytes: (n: number) => void): Readable {
    let complete = false;
    const tee = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        onBytes(chunk.length);
        void copy.add(chunk).then(() => callback(null, chunk));
      },
      flush(callback) {
        complete = true;
        callback();
      },
    });
    tee.once('close', () => void (complete ? copy.finish() : copy.abandon()));
    return pipeline(this.bucket.stream(), tee, () => {});
  }
}
