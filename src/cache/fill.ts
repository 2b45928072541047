import { EventEmitter, once } from 'node:events';
import type { Readable } from 'node:stream';
import { RegistryError } from '../http/errors.js';
import type { BlobSource, DownloadSink } from './blob-download.js';
import type { BlobStore, BlobWriter } from './blob-store.js';
import { DigestHasher, type VerifiedDigest } from './digest.js';
import { isDiskError } from './disk-errors.js';
import { type FillFollower, fillReader } from './fill-reader.js';
import { FillAttendance } from './fill-attendance.js';
import { type FillOptions, NO_ROOM } from './fill-options.js';
import { FillWindow } from './fill-window.js';
import { FillRelay } from './fill-relay.js';
import { PlacedBytes } from './placed-bytes.js';
import { downloadSegmented, type Placing } from './segmented-download.js';

export type { BlobSource } from './blob-download.js';

/** Received bytes are written to the temp file once this many are waiting. */
const WRITE_BATCH = 1024 * 1024;

/**
 * One upstream download of one blob into a store writer, hashed as it arrives. Any number of readers follow it:
 * the most recent bytes are handed to them from memory as they arrive (no wait for the disk), older ones are
 * read back from the writer. Readers hold back the last byte until the digest is verified, so a blob that
 * fails verification reaches no client complete: their responses are cut short instead.
 * The fill runs on its own timeout, not on any client's connection.
 *
 * If the cache cannot be written (disk full, read-only) or the blob finds no room under storage.max_size, the
 * fill turns into a relay (fill-relay.ts): bytes already on disk are read back from the (aborted) writer, the
 * rest stay in memory until every reader has them. Nothing is committed and nobody new joins.
 *
 * Readers and holders (a request about to read, a warm job) keep the fill going; once none is left for
 * orphanGraceMs the download is abandoned, its writer aborted.
 */
export class Fill extends EventEmitter {
  size: number | null = null;
  /** Bytes received from the upstream and hashed so far (a contiguous prefix of the blob). */
  received = 0;
  /** The byte ranges the blob was fetched in (1: one sequential stream). */
  segments = 1;
  state: 'starting' | 'running' | 'done' | 'failed' = 'starting';
  error: Error | null = null;
  /** Settles once the upstream has answered with the blob (size known) or failed before any byte. */
  readonly ready: Promise<void>;
  /** Resolves once the fill has ended, committed or failed (see state). */
  readonly finished: Promise<void>;
  #settleFinished!: () => void;
  #writer: BlobWriter | null = null;
  readonly #hasher: DigestHasher;
  readonly #relay: FillRelay;
  #settleReady!: (err?: Error) => void;
  /** Bytes [0, diskEnd) are in the writer. */
  #diskEnd = 0;
  readonly #attendance: FillAttendance;
  #releaseSpace: (() => void) | null = null;
  /** Bytes [memory.start, received); only bytes on disk (or, relaying, read by all) leave it. */
  readonly #memory = new FillWindow();
  /** Every byte is in and matches the digest: readers may have the last byte while the commit (fsync) runs. */
  #verified: VerifiedDigest | null = null;

  constructor(
    readonly digest: string,
    private readonly source: BlobSource,
    private readonly store: BlobStore,
    private readonly opts: FillOptions,
  ) {
    super();
    this.setMaxListeners(0);
    this.#hasher = new DigestHasher(digest);
    this.#attendance = new FillAttendance(digest, opts.orphanGraceMs);
    this.#relay = new FillRelay(digest);
    this.ready = new Promise<void>((resolve, reject) => {
      this.#settleReady = (err) => (err ? reject(err) : resolve());
    });
    this.ready.catch(() => {});
    this.finished = new Promise<void>((resolve) => (this.#settleFinished = resolve));
  }

  /** Runs the fill to the end; never rejects (failures are in state/error and reach readers). */
  async run(): Promise<void> {
    try {
      try {
        this.#writer = await this.store.createWriter(this.digest);
      } catch (err) {
        if (!isDiskError(err)) throw err;
        this.#diskFailed(err);
      }
      await this.#download();
      this.#verify();
      await this.#writeReceived();
      await this.#commit();
      this.state = 'done';
      this.emit('change');
    } catch (err) {
      const abandoned = this.#attendance.signal.aborted && this.#verified === null;
      this.#fail(abandoned ? (this.#attendance.signal.reason as Error) : err instanceof Error ? err : new Error(String(err)));
    } finally {
      this.#attendance.end();
      this.#releaseSpace?.();
      this.#releaseIfIdle();
      this.#settleFinished();
    }
  }

  /** Reserves the announced size against storage.max_size; without room, the blob is relayed, not cached. */
  async #reserve(size: number): Promise<void> {
    if (!this.opts.space || this.relayReason) return;
    this.#releaseSpace = await this.opts.space.reserve(size);
    if (!this.#releaseSpace) this.#relayInstead(NO_ROOM);
  }

  /**
   * Someone waits for the fill without reading it yet: a request about to read (`reads`), a warm job or prefetch
   * waiting for the commit. Returns the release.
   */
  hold(reads = false): () => void {
    const leave = this.#attendance.hold();
    const read = reads ? this.#relay.coming() : () => {};
    return () => (read(), leave());
  }

  /** Whether the fill was stopped because it could not be cached and nobody was there to relay it to. */
  get dropped(): boolean {
    return this.state === 'failed' && this.#relay.dropped(this.error);
  }

  /** Whether the fill was stopped because nobody read or waited for it any more. */
  get abandoned(): boolean {
    return this.state === 'failed' && this.error === this.#attendance.signal.reason;
  }

  /** In segments when the source allows (segmented-download.ts; readers follow `received`), else one stream. */
  async #download(): Promise<void> {
    const signal = AbortSignal.any([AbortSignal.timeout(this.opts.timeoutMs), this.#attendance.signal]);
    const sequential: DownloadSink = {
      started: async (size) => {
        this.size = size;
        if (size !== null) await this.#reserve(size);
        this.#relay.checkAudience();
        this.state = 'running';
        this.#settleReady();
      },
      received: (offset, bytes) => {
        this.#hasher.add(offset, bytes);
        return this.#keep(bytes);
      },
    };
    const placing: Placing = {
      // Asked once the size is reserved: a fill that relays (no room, no disk) takes one stream.
      placer: () => (this.#writer && !this.relayReason ? new PlacedBytes(this.#writer, this.#hasher, (prefix, bytes) => this.#prefixGrew(prefix, bytes)) : null),
      relayFrom: (err) => (isDiskError(err) && !this.relayReason ? (this.#diskFailed(err), this.received) : null),
    };
    this.segments = await downloadSegmented(this.digest, this.source, sequential, placing, { signal, maxResumes: this.opts.maxResumes, log: this.opts.log });
  }

  /** Segments: the prefix grew by bytes already on disk; readers that keep up take them from memory. */
  #prefixGrew(prefix: number, bytes: Buffer[]): void {
    const start = bytes.reduce((at, b) => at - b.byteLength, prefix);
    if (this.#memory.end !== start) this.#memory.clear(start);
    for (const b of bytes) this.#memory.push(b);
    this.received = this.#diskEnd = prefix;
    this.#trim();
    this.emit('change');
  }

  /**
   * Hands a received chunk to the readers, and writes to the store once WRITE_BATCH bytes wait (the download
   * waits for that write: the disk sets the pace, not memory). One awaited write per network chunk (often
   * 16-64 KiB) made a cold 40 MiB layer take twice as long as the upstream needs to send it. In relay mode it
   * waits (back-pressure) while too much is kept for the slowest reader.
   */
  async #keep(bytes: Buffer): Promise<void> {
    await this.#relay.paced(() => this.#memory.bytes, () => once(this, 'drain'));
    this.#memory.push(bytes);
    this.received += bytes.byteLength;
    this.emit('change');
    if (!this.relayReason && this.received - this.#diskEnd >= WRITE_BATCH) await this.#writeReceived();
  }

  /** Writes what was received and is not on disk yet; a disk error turns the fill into a relay. */
  async #writeReceived(): Promise<void> {
    if (this.relayReason || this.#diskEnd === this.received) return;
    try {
      await this.#writer!.write(this.#diskEnd, this.#memory.from(this.#diskEnd));
      this.#diskEnd = this.received;
    } catch (err) {
      if (!isDiskError(err)) throw err;
      this.#diskFailed(err);
    }
    this.#trim();
  }

  #diskFailed(err: NodeJS.ErrnoException): void {
    this.opts.onDiskError?.(err, this.digest);
    this.#relayInstead(`cache not writable: ${err.code}`);
  }

  #relayInstead(reason: string): void {
    this.#relay.reason = reason;
    this.#releaseSpace?.();
    // The readers keep reading what the writer has; nothing partial is left behind in the store.
    void this.#writer?.abort();
  }

  /** Lets go of the bytes in memory nobody needs (FillRelay.trim); lets a paused relay go on. */
  #trim(): void {
    if (this.#relay.trim(this.#memory, this.#diskEnd)) this.emit('drain');
  }

  /** Why the fill relays instead of caching (the cache not writable, or no room), or null while it caches. */
  get relayReason(): string | null {
    return this.#relay.reason;
  }

  /** Whether new clients may join: not once the fill relays (it has moved on). */
  get joinable(): boolean {
    return this.relayReason === null && this.state !== 'failed';
  }

  #verify(): void {
    const result = this.#hasher.verify();
    if ('actual' in result) {
      throw new RegistryError(
        'UPSTREAM_BAD_RESPONSE',
        `${this.source.label}: blob content does not match its digest ${this.digest} (got ${result.actual}); not cached`,
      );
    }
    this.size = this.received;
    this.#verified = result.verified;
    this.emit('change');
  }

  async #commit(): Promise<void> {
    if (this.relayReason) return;
    try {
      await this.#writer!.commit(this.#verified!);
    } catch (err) {
      if (!isDiskError(err)) throw err;
      this.#diskFailed(err); // every byte is in the (now aborted) writer: the readers finish from it
    }
  }

  #fail(err: Error): void {
    this.state = 'failed';
    this.error = err;
    // Before telling the readers: the last one to leave closes the writer.
    void this.#writer?.abort();
    this.#settleReady(err);
    this.emit('change');
  }

  /** Whether reader() can still be called: not after a failure, nor once finished with its writer closed. */
  get readable(): boolean {
    if (this.state === 'failed') return false;
    return this.#writer !== null || (this.relayReason !== null && this.state !== 'done');
  }

  /** Every byte is in and matches the digest. */
  get isVerified(): boolean {
    return this.#verified !== null;
  }

  /** Whether the blob was committed to the cache (false for a relay). */
  get committed(): boolean {
    return this.state === 'done' && this.relayReason === null;
  }

  /** A stream of [start, end] (inclusive; end defaults to the last byte) that follows the fill. */
  reader(start = 0, end?: number): Readable {
    if (!this.readable) throw this.error ?? new Error('fill is no longer readable');
    const writer = this.#writer;
    const place = this.#relay.follow(start, this.#attendance.hold());
    const follower: FillFollower = {
      memory: this.#memory,
      readBack: (buffer, position) => writer!.read(buffer, position),
      moved: (at) => {
        place.at = at;
        if (this.relayReason) this.#trim();
      },
      detached: () => {
        place.leave();
        this.#trim();
        this.#releaseIfIdle();
      },
      onChange: (listener) => {
        this.on('change', listener);
        return () => this.off('change', listener);
      },
    };
    return fillReader(this, follower, start, end);
  }

  #releaseIfIdle(): void {
    if (this.#relay.readers > 0 || (this.state !== 'done' && this.state !== 'failed')) return;
    this.#memory.clear(this.received);
    const writer = this.#writer;
    this.#writer = null;
    void writer?.close();
  }
}
