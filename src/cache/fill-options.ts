import type { Logger } from 'pino';

/** What a fill is given by the cache that runs it. */
export interface FillOptions {
  timeoutMs: number;
  /** How many times a broken transfer is resumed with Range before the fill gives up. */
  maxResumes: number;
  log: Logger;
  /** The cache could not be written (disk full, read-only...): the fill relays to its readers instead. */
  onDiskError?: (err: NodeJS.ErrnoException, digest: string) => void;
  /** A fill nobody reads or waits for any more is stopped after this long. */
  orphanGraceMs?: number;
  /** Where the announced size is reserved against storage.max_size; without room the fill relays. */
  space?: FillSpace;
}

/** Why a blob is not kept when its size cannot be reserved (a fill relays it instead; a copy from the bucket stops). */
export const NO_ROOM = 'no room under storage.max_size: the cached blobs are in use';

export interface FillSpace {
  /** Reserves size bytes (making room if needed); null when they cannot fit. Returns the (idempotent) release. */
  reserve(size: number): Promise<(() => void) | null>;
}
