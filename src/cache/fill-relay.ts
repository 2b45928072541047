import { RegistryError } from '../http/errors.js';
import { once } from '../util/once.js';
import type { FillWindow } from './fill-window.js';

/**
 * The most recent bytes kept in memory (once on disk) for readers that keep up with the download. With the
 * write batch, a running fill holds at most about 2 MiB: many cold layers at once must not add up to much.
 */
const MEMORY_WINDOW = 1024 * 1024;

/** In relay mode, the download pauses while this many bytes wait for the slowest reader. */
const RELAY_LIMIT = 8 * 1024 * 1024;

/** Where one reader of a fill is, and how it leaves. */
export interface ReaderPlace {
  at: number;
  leave(): void;
}

/**
 * A fill's readers, the memory they need, and the relay the fill turns into when the cache cannot take the blob
 * (not writable, no room under storage.max_size): bytes then stay in memory until every reader has them, the
 * download pausing while RELAY_LIMIT bytes wait for the slowest reader. A relay needs someone to relay to: a
 * reader, or a request about to read (joined, not reading yet); without one (a prefetch, a warm job, clients
 * gone) the fill is dropped at once.
 */
export class FillRelay {
  /** Why the fill relays instead of caching, or null while it caches. */
  reason: string | null = null;
  readonly #readers = new Set<ReaderPlace>();
  /** Requests about to read: joined the fill, not reading yet. */
  #coming = 0;
  /** The error a fill with nobody to relay to fails with. */
  #dropped: Error | null = null;

  constructor(private readonly digest: string) {}

  get readers(): number {
    return this.#readers.size;
  }

  /** A request about to read; returns its (idempotent) release, called once it reads or gives up. */
  coming(): () => void {
    this.#coming++;
    return once(() => this.#coming--);
  }

  /** A reader starting at `start`; its place moves with it until it leaves. */
  follow(start: number, left: () => void): ReaderPlace {
    const place: ReaderPlace = {
      at: start,
      leave: once(() => {
        this.#readers.delete(place);
        left();
      }),
    };
    this.#readers.add(place);
    return place;
  }

  /** The position of the slowest reader (Infinity without readers). */
  get slowest(): number {
    let behind = Infinity;
    for (const r of this.#readers) behind = Math.min(behind, r.at);
    return behind;
  }

  /**
   * Drops chunks from a fill's memory: those on disk (before diskEnd) beyond the last MEMORY_WINDOW bytes (readers
   * that far behind read the writer), and, relaying, those every reader has passed. True when a paused relay may
   * go on: something was dropped, or nobody reads.
   */
  trim(memory: FillWindow, diskEnd: number): boolean {
    const behind = this.reason ? this.slowest : Infinity;
    const trimmed = memory.dropWhile((end) => {
      const passed = this.reason !== null && end <= behind;
      return passed || (end <= diskEnd && (memory.bytes > MEMORY_WINDOW || this.reason !== null));
    });
    return trimmed || this.#readers.size === 0;
  }

  /** Throws the drop when relaying with nobody to relay to, neither a reader nor a request about to read. */
  checkAudience(): void {
    if (this.reason && this.#readers.size === 0 && this.#coming === 0) throw this.#drop();
  }

  /**
   * Before relaying received bytes: waits briefly for the request that is about to read (it attaches right after
   * the upstream answered), then, while more than RELAY_LIMIT bytes are held, for the slowest reader (`drained`).
   * Throws the drop once nobody is left to relay to.
   */
  async paced(held: () => number, drained: () => Promise<unknown>): Promise<void> {
    if (!this.reason) return;
    for (let i = 0; i < 100 && this.#readers.size === 0 && this.#coming > 0; i++) await new Promise((r) => setTimeout(r, 50));
    if (this.#readers.size === 0) throw this.#drop();
    while (held() > RELAY_LIMIT) {
      if (this.#readers.size === 0) throw this.#drop();
      await drained();
    }
  }

  /** Whether err is the drop of a fill that had nobody to relay to. */
  dropped(err: Error | null): boolean {
    return err !== null && err === this.#dropped;
  }

  #drop(): Error {
    this.#dropped ??= new RegistryError('INTERNAL', `blob ${this.digest} not cached (${this.reason}) and no client left to relay it to`);
    return this.#dropped;
  }
}
