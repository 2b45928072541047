import type { Readable, Writable } from 'node:stream';
import type { VerifiedDigest } from './digest.js';

/** Inclusive byte offsets within a blob. */
export interface BlobRange {
  start: number;
  end: number;
}

export interface BlobInfo {
  digest: string;
  size: number;
}

/** Something a store holds that no committed blob owns (a writer a crashed process left, a stray file). */
export interface Leftover {
  name: string;
  size: number;
}

/**
 * A committed blob opened for reading. While it is open the store never deletes the blob. Use it once: stream()
 * or sendTo() (either closes it when the bytes are out or the consumer went away), or close() when no body is sent.
 */
export interface BlobReader {
  readonly size: number;
  stream(range?: BlobRange): Readable;
  /** Writes the bytes to a socket or http.ServerResponse and ends it (destroys it if reading fails). */
  sendTo(out: Writable, range: BlobRange | undefined, onBytes: (n: number) => void): void;
  /** Idempotent. */
  close(): void;
}

/**
 * A blob being written; nothing of it is visible until commit. What was written stays readable through read()
 * until close(), also after commit or abort (readers of a fill finish from it).
 */
export interface BlobWriter {
  readonly digest: string;
  /** Writes all of bytes at offset (a write the storage takes only in part is continued). */
  write(offset: number, bytes: Buffer | Buffer[]): Promise<void>;
  /** Reads written bytes at position into buffer; resolves with how many were read. */
  read(buffer: Buffer, position: number): Promise<number>;
  /**
   * Makes what was written durable and releases what the writer holds open (a file descriptor), until read or
   * commit needs it again: many writers can then wait for their commit without exhausting descriptors.
   */
  park(): Promise<void>;
  /** Makes the blob durable and visible. Throws unless verified is a hasher's proof for this digest and byte count. */
  commit(verified: VerifiedDigest): Promise<void>;
  /** Removes what was written from the store; idempotent, and a no-op after commit. */
  abort(): Promise<void>;
  /** Releases the writer; aborts it if it was not committed. Idempotent. */
  close(): Promise<void>;
}

export interface BlobStoreEvents {
  commit: [blob: BlobInfo];
  delete: [digest: string];
}

/**
 * Blobs by digest. A store holds a committed blob only if a hasher verified its content; it never decides what is
 * valid itself. The filesystem (fs-blob-store.ts) is the default store; with an OSS bucket (oss-blob-store.ts) the
 * filesystem stays in front of it (tiered-blob-store.ts), where delete(), list() and leftovers are the local
 * disk's; memory-blob-store.ts serves unit tests.
 */
export interface BlobStore {
  /** The size of a committed blob, or null. */
  stat(digest: string): Promise<{ size: number } | null>;
  open(digest: string): Promise<BlobReader | null>;
  createWriter(digest: string): Promise<BlobWriter>;
  /** Whether a reader has the blob open now. */
  inUse(digest: string): boolean;
  /** Removes a committed blob. Returns false (and removes nothing) while it is being read. */
  delete(digest: string): Promise<boolean>;
  /** Every committed blob (reconcile and gc compare these with the database). */
  list(): AsyncIterable<BlobInfo>;
  /** Writers no process finishes any more, untouched since before olderThan (ms since the epoch). */
  leftovers(olderThan: number): Promise<Leftover[]>;
  removeLeftovers(leftovers: Leftover[]): Promise<void>;
  /** Readies the store at start-up and removes what an earlier process left half-written. */
  prepare(): Promise<void>;
  /** Resolves if the store can be written now; rejects with the reason (readiness). */
  probe(): Promise<void>;
  /** A time-limited URL a client may fetch the blob from directly, where the store offers one. */
  presignedUrl?(digest: string, ttlMs: number): Promise<string | null>;
  on<E extends keyof BlobStoreEvents>(event: E, listener: (...args: BlobStoreEvents[E]) => void): this;
}
