import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { RegistryError } from '../http/errors.js';
import { isNetworkError, networkError } from '../upstream/errors.js';
import type { BlobStore, TempBlob } from './blob-store.js';

/** Where a fill gets its bytes: each call asks the upstream afresh for the blob from offset on. */
export interface BlobSource {
  label: string;
  /** Told of every chunk received from the upstream. */
  onBytes?: (n: number) => void;
  open(offset: number, signal: AbortSignal): Promise<{ start: number; size: number | null; body: ReadableStream<Uint8Array> }>;
}

export interface FillOptions {
  timeoutMs: number;
  /** How many times a broken transfer is resumed with Range before the fill gives up. */
  maxResumes: number;
  log: Logger;
}

const READ_CHUNK = 256 * 1024;

/**
 * One upstream download of one blob into a temp file, hashed as it is written. Any number of readers stream
 * from the temp file while it grows. Readers hold back the last byte until the digest is verified, so a blob
 * that fails verification reaches no client complete: their responses are cut short instead.
 * The fill runs on its own timeout, not on any client's connection.
 */
export class Fill extends EventEmitter {
  size: number | null = null;
  written = 0;
  state: 'starting' | 'running' | 'done' | 'failed' = 'starting';
  error: Error | null = null;
  /** Settles once the upstream has answered with the blob (size known) or failed before any byte. */
  readonly ready: Promise<void>;
  #temp: TempBlob | null = null;
  #readers = 0;
  #settleReady!: (err?: Error) => void;

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
  }

  /** Runs the fill to the end; never rejects (failures are in state/error and reach readers). */
  async run(): Promise<void> {
    const signal = AbortSignal.timeout(this.opts.timeoutMs);
    try {
      this.#temp = await this.store.createTemp(this.digest);
      await this.#download(signal);
      await this.#verifyAndCommit();
      this.state = 'done';
      this.emit('change');
    } catch (err) {
      this.#fail(err instanceof Error ? err : new Error(String(err)));
    } finally {
      this.#releaseIfIdle();
    }
  }

  async #download(signal: AbortSignal): Promise<void> {
    const hash = createHash('sha256');
    for (let resumes = 0; ; resumes++) {
      const answer = await this.source.open(this.written, signal);
      if (this.state === 'starting') {
        this.size = answer.size;
        this.state = 'running';
        this.#settleReady();
      } else if (answer.size !== null && this.size !== null && answer.size !== this.size) {
        await answer.body.cancel().catch(() => {});
        throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${this.source.label}: blob ${this.digest} changed size while resuming`);
      }
      let skip = this.written - answer.start;
      try {
        for await (const chunk of answer.body) {
          let bytes = chunk;
          if (skip > 0) {
            const n = Math.min(skip, bytes.byteLength);
            skip -= n;
            bytes = bytes.subarray(n);
            if (bytes.byteLength === 0) continue;
          }
          if (this.size !== null && this.written + bytes.byteLength > this.size) {
            throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${this.source.label}: blob ${this.digest} is longer than announced`);
          }
          this.source.onBytes?.(bytes.byteLength);
          hash.update(bytes);
          await this.#temp!.handle.write(bytes, 0, bytes.byteLength, this.written);
          this.written += bytes.byteLength;
          this.emit('change');
        }
      } catch (err) {
        if (!isNetworkError(err) || signal.aborted) throw wrapNetwork(err, this.source.label, this.digest);
        if (resumes >= this.opts.maxResumes) throw wrapNetwork(err, this.source.label, this.digest);
        this.opts.log.warn({ digest: this.digest, offset: this.written, reason: (err as Error).message }, 'blob transfer broke; resuming');
        continue;
      }
      if (this.size === null || this.written >= this.size) {
        this.#digestHex = hash.digest('hex');
        return;
      }
      if (resumes >= this.opts.maxResumes) {
        throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${this.source.label}: blob ${this.digest} ended early at ${this.written} of ${this.size} bytes`);
      }
      this.opts.log.warn({ digest: this.digest, offset: this.written }, 'blob transfer ended early; resuming');
    }
  }

  #digestHex = '';

  async #verifyAndCommit(): Promise<void> {
    const actual = `sha256:${this.#digestHex}`;
    if (actual !== this.digest) {
      throw new RegistryError(
        'UPSTREAM_BAD_RESPONSE',
        `${this.source.label}: blob content does not match its digest ${this.digest} (got ${actual}); not cached`,
      );
    }
    this.size = this.written;
    await this.store.commit(this.#temp!, this.digest, this.written);
  }

  #fail(err: Error): void {
    this.state = 'failed';
    this.error = err;
    this.#settleReady(err);
    this.emit('change');
    if (this.#temp) void this.store.discard(this.#temp);
  }

  /** Whether reader() can still be called: false once the fill has finished and its temp file is closed. */
  get readable(): boolean {
    return this.#temp !== null && this.state !== 'failed';
  }

  /** A stream of [start, end] (inclusive; end defaults to the last byte) that follows the fill. */
  reader(start = 0, end?: number): Readable {
    if (!this.readable) throw this.error ?? new Error('fill is no longer readable');
    const handle = this.#temp!.handle;
    this.#readers++;
    let position = start;
    let reading = false;
    const fill = this;
    const last = () => (end !== undefined ? end : fill.state === 'done' ? fill.size! - 1 : Infinity);
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
        const available = fill.state === 'done' ? fill.size! : Math.max(0, fill.written - 1);
        const stop = Math.min(last() + 1, available);
        if (position > last()) return void stream.push(null);
        if (position >= stop) {
          if (fill.state === 'done') return void stream.push(null);
          waiting = true;
          return;
        }
        const length = Math.min(READ_CHUNK, stop - position);
        const buf = Buffer.allocUnsafe(length);
        let bytesRead: number;
        try {
          ({ bytesRead } = await handle.read(buf, 0, length, position));
        } catch (err) {
          return void stream.destroy(err as Error);
        }
        if (stream.destroyed) return;
        position += bytesRead;
        if (!stream.push(bytesRead === length ? buf : buf.subarray(0, bytesRead))) return;
      }
    }
    return stream;
  }

  #releaseIfIdle(): void {
    if (this.#readers === 0 && (this.state === 'done' || this.state === 'failed') && this.#temp) {
      const temp = this.#temp;
      this.#temp = null;
      void temp.handle.close().catch(() => {});
    }
  }
}

function wrapNetwork(err: unknown, label: string, digest: string): Error {
  if (err instanceof RegistryError) return err;
  if (isNetworkError(err)) return networkError(label, `GET blob ${digest}`, err);
  return err instanceof Error ? err : new Error(String(err));
}
