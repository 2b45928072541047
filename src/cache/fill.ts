import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { RegistryError } from '../http/errors.js';
import { isNetworkError, networkError } from '../upstream/errors.js';
import type { UpstreamBody } from '../upstream/transport.js';
import type { BlobStore, TempBlob } from './blob-store.js';

/** Where a fill gets its bytes: each call asks the upstream afresh for the blob from offset on. */
export interface BlobSource {
  label: string;
  /** Told of every chunk received from the upstream. */
  onBytes?: (n: number) => void;
  open(offset: number, signal: AbortSignal): Promise<{ start: number; size: number | null; body: UpstreamBody }>;
}

export interface FillOptions {
  timeoutMs: number;
  /** How many times a broken transfer is resumed with Range before the fill gives up. */
  maxResumes: number;
  log: Logger;
  /** The cache could not be written (disk full, read-only...): the fill relays to its readers instead. */
  onDiskError?: (err: NodeJS.ErrnoException, digest: string) => void;
}

const READ_CHUNK = 256 * 1024;
/** Received bytes are written to the temp file once this many are waiting. */
const WRITE_BATCH = 1024 * 1024;
/**
 * The most recent bytes kept in memory (once on disk) for readers that keep up with the download. With the
 * write batch, a running fill holds at most about 2 MiB: many cold layers at once must not add up to much.
 */
const MEMORY_WINDOW = 1024 * 1024;
/** In relay mode, the download pauses while this many bytes wait for the slowest reader. */
const RELAY_LIMIT = 8 * 1024 * 1024;
const DISK_ERRORS = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EIO', 'EACCES', 'EPERM', 'EMFILE', 'ENFILE', 'ENOENT', 'ENOTDIR']);

export function isDiskError(err: unknown): err is NodeJS.ErrnoException {
  return DISK_ERRORS.has((err as NodeJS.ErrnoException)?.code ?? '');
}

/**
 * One upstream download of one blob into a temp file, hashed as it arrives. Any number of readers follow it:
 * the most recent bytes are handed to them from memory as they arrive (no wait for the disk), older ones are
 * read back from the temp file. Readers hold back the last byte until the digest is verified, so a blob that
 * fails verification reaches no client complete: their responses are cut short instead.
 * The fill runs on its own timeout, not on any client's connection.
 *
 * If the cache cannot be written (disk full, read-only), the fill turns into a relay: bytes already on disk
 * are read from the (unlinked) temp file, the rest stay in memory until every reader has them, the download
 * pausing while RELAY_LIMIT bytes wait for the slowest. Nothing is committed and nobody new joins.
 */
export class Fill extends EventEmitter {
  size: number | null = null;
  /** Bytes received from the upstream and hashed so far. */
  received = 0;
  state: 'starting' | 'running' | 'done' | 'failed' = 'starting';
  error: Error | null = null;
  /** Settles once the upstream has answered with the blob (size known) or failed before any byte. */
  readonly ready: Promise<void>;
  /** Resolves once the fill has ended, committed or failed (see state). */
  readonly finished: Promise<void>;
  #settleFinished!: () => void;
  #temp: TempBlob | null = null;
  #readers = 0;
  #settleReady!: (err?: Error) => void;
  /** Bytes [0, diskEnd) are in the temp file. */
  #diskEnd = 0;
  #diskError: NodeJS.ErrnoException | null = null;
  /** Bytes [memoryStart, received) in arrival order; only bytes on disk (or, relaying, read by all) leave it. */
  #memory: Buffer[] = [];
  #memoryStart = 0;
  #memoryBytes = 0;
  /** Positions of the current readers, for trimming memory while relaying. */
  readonly #positions = new Set<{ at: number }>();
  /** Every byte is in and matches the digest: readers may have the last byte while the commit (fsync) runs. */
  #verified = false;
  #digestHex = '';

  constructor(
    readonly digest: string,
    private readonly source: BlobSource,
    private readonly store: BlobStore,
    private readonly opts: FillOptions,
  ) {
    super();
    this.setMaxListeners(0);
    this.ready = new Promise<void>((resolve, reject) => {
      this.#settleReady = (err) => (err ? reject(err) : resolve());
    });
    this.ready.catch(() => {});
    this.finished = new Promise<void>((resolve) => (this.#settleFinished = resolve));
  }

  /** Runs the fill to the end; never rejects (failures are in state/error and reach readers). */
  async run(): Promise<void> {
    const signal = AbortSignal.timeout(this.opts.timeoutMs);
    try {
      try {
        this.#temp = await this.store.createTemp(this.digest);
      } catch (err) {
        if (!isDiskError(err)) throw err;
        this.#diskFailed(err);
      }
      await this.#download(signal);
      this.#verify();
      await this.#writeReceived();
      await this.#commit();
      this.state = 'done';
      this.emit('change');
    } catch (err) {
      this.#fail(err instanceof Error ? err : new Error(String(err)));
    } finally {
      this.#releaseIfIdle();
      this.#settleFinished();
    }
  }

  async #download(signal: AbortSignal): Promise<void> {
    const hash = createHash('sha256');
    for (let resumes = 0; ; resumes++) {
      const answer = await this.source.open(this.received, signal);
      if (this.state === 'starting') {
        this.size = answer.size;
        this.state = 'running';
        this.#settleReady();
      } else if (answer.size !== null && this.size !== null && answer.size !== this.size) {
        await answer.body.cancel().catch(() => {});
        throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${this.source.label}: blob ${this.digest} changed size while resuming`);
      }
      let skip = this.received - answer.start;
      try {
        for await (const chunk of answer.body) {
          let bytes = chunk;
          if (skip > 0) {
            const n = Math.min(skip, bytes.byteLength);
            skip -= n;
            bytes = bytes.subarray(n);
            if (bytes.byteLength === 0) continue;
          }
          if (this.size !== null && this.received + bytes.byteLength > this.size) {
            throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${this.source.label}: blob ${this.digest} is longer than announced`);
          }
          this.source.onBytes?.(bytes.byteLength);
          hash.update(bytes);
          await this.#keep(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
        }
      } catch (err) {
        if (!isNetworkError(err) || signal.aborted) throw wrapNetwork(err, this.source.label, this.digest);
        if (resumes >= this.opts.maxResumes) throw wrapNetwork(err, this.source.label, this.digest);
        // What arrived before the break is hashed and kept already: the resume starts after it.
        this.opts.log.warn({ digest: this.digest, offset: this.received, reason: (err as Error).message }, 'blob transfer broke; resuming');
        continue;
      }
      if (this.size === null || this.received >= this.size) {
        this.#digestHex = hash.digest('hex');
        return;
      }
      if (resumes >= this.opts.maxResumes) {
        throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${this.source.label}: blob ${this.digest} ended early at ${this.received} of ${this.size} bytes`);
      }
      this.opts.log.warn({ digest: this.digest, offset: this.received }, 'blob transfer ended early; resuming');
    }
  }

  /**
   * Hands a received chunk to the readers, and writes to the temp file once WRITE_BATCH bytes wait (the download
   * waits for that write: the disk sets the pace, not memory). One awaited write per network chunk (often
   * 16-64 KiB) made a cold 40 MiB layer take twice as long as the upstream needs to send it. In relay mode it
   * waits (back-pressure) while too much is kept for the slowest reader.
   */
  async #keep(bytes: Buffer): Promise<void> {
    if (this.#diskError && this.#readers === 0) await this.#firstReader();
    this.#memory.push(bytes);
    this.#memoryBytes += bytes.byteLength;
    this.received += bytes.byteLength;
    this.emit('change');
    if (!this.#diskError && this.received - this.#diskEnd >= WRITE_BATCH) await this.#writeReceived();
    while (this.#diskError && this.#memoryBytes > RELAY_LIMIT) {
      if (this.#readers === 0) throw this.#noReaderLeft();
      await new Promise<void>((resolve) => this.once('drain', resolve));
    }
  }

  /** Writes what was received and is not on disk yet; a disk error turns the fill into a relay. */
  async #writeReceived(): Promise<void> {
    if (this.#diskError || this.#diskEnd === this.received) return;
    const parts: Buffer[] = [];
    let at = this.#memoryStart;
    for (const chunk of this.#memory) {
      const end = at + chunk.length;
      if (end > this.#diskEnd) parts.push(at >= this.#diskEnd ? chunk : chunk.subarray(this.#diskEnd - at));
      at = end;
    }
    try {
      // A nearly full disk may take part of a write without an error: write until all of it is in.
      for (let i = 0; i < parts.length; ) {
        const { bytesWritten } = await this.#temp!.handle.writev(parts.slice(i), this.#diskEnd);
        if (bytesWritten === 0) throw Object.assign(new Error('short write: no space left on device'), { code: 'ENOSPC' });
        this.#diskEnd += bytesWritten;
        for (let left = bytesWritten; left > 0 && i < parts.length; ) {
          const part = parts[i]!;
          if (part.length <= left) {
            left -= part.length;
            i++;
          } else {
            parts[i] = part.subarray(left);
            left = 0;
          }
        }
      }
    } catch (err) {
      if (!isDiskError(err)) throw err;
      this.#diskFailed(err);
    }
    this.#trim();
  }

  #diskFailed(err: NodeJS.ErrnoException): void {
    this.#diskError = err;
    this.opts.onDiskError?.(err, this.digest);
    // The readers keep the file open; nothing partial is left behind in tmp/.
    if (this.#temp) void this.store.discard(this.#temp);
  }

  /** The client that started a relay attaches right after the upstream answered; wait for it briefly. */
  async #firstReader(): Promise<void> {
    for (let i = 0; i < 100 && this.#readers === 0; i++) await new Promise((r) => setTimeout(r, 50));
    if (this.#readers === 0) throw this.#noReaderLeft();
  }

  #noReaderLeft(): Error {
    return new RegistryError('INTERNAL', `cache not writable (${this.#diskError?.code}) and no client left to relay blob ${this.digest} to`);
  }

  /**
   * Drops chunks from memory: those on disk beyond the last MEMORY_WINDOW bytes (readers that far behind read
   * the file), and, relaying, those every reader has passed. Lets a paused relay go on.
   */
  #trim(): void {
    let behind = Infinity;
    if (this.#diskError) for (const p of this.#positions) behind = Math.min(behind, p.at);
    let trimmed = false;
    while (this.#memory.length) {
      const end = this.#memoryStart + this.#memory[0]!.length;
      const onDisk = end <= this.#diskEnd;
      const passed = this.#diskError !== null && end <= behind;
      if (!(passed || (onDisk && (this.#memoryBytes > MEMORY_WINDOW || this.#diskError)))) break;
      const chunk = this.#memory.shift()!;
      this.#memoryStart += chunk.length;
      this.#memoryBytes -= chunk.length;
      trimmed = true;
    }
    if (trimmed || this.#readers === 0) this.emit('drain');
  }

  /** Whether new clients may join: not once the cache could not be written (the relay has moved on). */
  get joinable(): boolean {
    return this.#diskError === null && this.state !== 'failed';
  }

  #verify(): void {
    const actual = `sha256:${this.#digestHex}`;
    if (actual !== this.digest) {
      throw new RegistryError(
        'UPSTREAM_BAD_RESPONSE',
        `${this.source.label}: blob content does not match its digest ${this.digest} (got ${actual}); not cached`,
      );
    }
    this.size = this.received;
    this.#verified = true;
    this.emit('change');
  }

  async #commit(): Promise<void> {
    if (this.#diskError) return;
    try {
      await this.store.commit(this.#temp!, this.digest, this.received);
    } catch (err) {
      if (!isDiskError(err)) throw err;
      this.#diskFailed(err); // every byte is in the (now unlinked) temp file: the readers finish from it
    }
  }

  #fail(err: Error): void {
    this.state = 'failed';
    this.error = err;
    // Before telling the readers: the last one to leave closes the temp file and forgets it.
    if (this.#temp) void this.store.discard(this.#temp);
    this.#settleReady(err);
    this.emit('change');
  }

  /** Whether reader() can still be called: not after a failure, nor once finished with its temp file closed. */
  get readable(): boolean {
    if (this.state === 'failed') return false;
    return this.#temp !== null || (this.#diskError !== null && this.state !== 'done');
  }

  /** Whether the blob was committed to the cache (false for a relay). */
  get committed(): boolean {
    return this.state === 'done' && this.#diskError === null;
  }

  /** A stream of [start, end] (inclusive; end defaults to the last byte) that follows the fill. */
  reader(start = 0, end?: number): Readable {
    if (!this.readable) throw this.error ?? new Error('fill is no longer readable');
    const handle = this.#temp?.handle ?? null;
    this.#readers++;
    const tracked = { at: start };
    this.#positions.add(tracked);
    let position = start;
    let reading = false;
    const fill = this;
    const last = () => (end !== undefined ? end : fill.#verified ? fill.size! - 1 : Infinity);
    // Node calls read() once and then waits for a push; when the fill has no new bytes yet, pump returns
    // without pushing and the fill's next 'change' starts it again.
    let again = false;
    const kick = (): void => {
      if (stream.destroyed) return;
      if (reading) {
        again = true;
        return;
      }
      reading = true;
      again = false;
      void pump().finally(() => {
        reading = false;
        if (again) kick();
      });
    };
    const stream = new Readable({
      highWaterMark: READ_CHUNK,
      read: kick,
      destroy(err, cb) {
        fill.off('change', onChange);
        fill.#readers--;
        fill.#positions.delete(tracked);
        fill.#trim();
        fill.#releaseIfIdle();
        cb(err);
      },
    });
    let waiting = false;
    const onChange = () => {
      if (waiting || reading) kick();
    };
    fill.on('change', onChange);

    async function pump(): Promise<void> {
      waiting = false;
      for (;;) {
        if (fill.state === 'failed') return void stream.destroy(fill.error ?? new Error('fill failed'));
        // Everything but the last byte may be read while the fill runs: the last one waits for verification.
        const available = fill.#verified ? fill.size! : Math.max(0, fill.received - 1);
        const stop = Math.min(last() + 1, available);
        if (position > last()) return void stream.push(null);
        if (position >= stop) {
          if (fill.#verified) return void stream.push(null);
          waiting = true;
          return;
        }
        let chunk: Buffer;
        if (position >= fill.#memoryStart) {
          chunk = fill.#fromMemory(position, stop - position);
        } else {
          const length = Math.min(READ_CHUNK, stop - position, fill.#memoryStart - position);
          const buf = Buffer.allocUnsafe(length);
          try {
            const { bytesRead } = await handle!.read(buf, 0, length, position);
            if (bytesRead === 0) throw new Error(`blob ${fill.digest}: temp file ends before byte ${position}`);
            chunk = bytesRead === length ? buf : buf.subarray(0, bytesRead);
          } catch (err) {
            return void stream.destroy(err as Error);
          }
        }
        if (stream.destroyed) return;
        position += chunk.length;
        tracked.at = position;
        if (fill.#diskError) fill.#trim();
        if (!stream.push(chunk)) return;
      }
    }
    return stream;
  }

  /** Up to max bytes at position from memory (position is at or after memoryStart), without a copy. */
  #fromMemory(position: number, max: number): Buffer {
    // Readers are mostly near the newest bytes: look from the end.
    let offset = this.received;
    for (let i = this.#memory.length - 1; i >= 0; i--) {
      const chunk = this.#memory[i]!;
      offset -= chunk.length;
      if (position >= offset) return chunk.subarray(position - offset, Math.min(chunk.length, position - offset + max));
    }
    throw new Error(`memory has no byte ${position}`);
  }

  #releaseIfIdle(): void {
    if (this.#readers === 0 && (this.state === 'done' || this.state === 'failed')) {
      this.#memory = [];
      this.#memoryBytes = 0;
      this.#memoryStart = this.received;
      if (this.#temp) {
        const temp = this.#temp;
        this.#temp = null;
        void temp.handle.close().catch(() => {});
      }
    }
  }
}

function wrapNetwork(err: unknown, label: string, digest: string): Error {
  if (err instanceof RegistryError) return err;
  if (isNetworkError(err)) return networkError(label, `GET blob ${digest}`, err);
  return err instanceof Error ? err : new Error(String(err));
}
