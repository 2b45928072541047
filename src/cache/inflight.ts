import { RegistryError } from '../http/errors.js';
import { type BlobSource, Fill } from './fill.js';
import type { FillOptions } from './fill-options.js';
import { type FillLimits, FillSlots, type FillStarter } from './fill-slots.js';
import type { BlobStore } from './blob-store.js';

/** Told when a fill ends, with the milliseconds it ran. */
export type FinishListener = (fill: Fill, ms: number) => void;

/** A fill joined or started: `release` lets go of it once its bytes are being read, or are not wanted after all. */
export interface JoinedFill {
  fill: Fill;
  joined: boolean;
  release: () => void;
}

/**
 * The fills running now, one per digest: a client asking for a blob being filled joins that fill (always
 * allowed: it costs the upstream nothing). Starting a new one takes a slot (see FillSlots).
 */
export class BlobFills {
  readonly #fills = new Map<string, Fill>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #slots: FillSlots;

  constructor(
    private readonly store: BlobStore,
    private readonly opts: FillOptions,
    limits: FillLimits,
  ) {
    this.#slots = new FillSlots(limits);
  }

  /** The running fill for digest, if any. */
  running(digest: string): Fill | undefined {
    return this.#fills.get(digest);
  }

  /**
   * Joins the running fill for digest or starts one from source (throws TOO_MANY_REQUESTS when the starter may not
   * start one now). `onFinish` is called once when a fill started here ends (committed or failed), with how long
   * it ran.
   */
  join(digest: string, source: BlobSource, starter: FillStarter, onFinish?: FinishListener, reads = starter !== 'warm'): JoinedFill {
    const existing = this.#fills.get(digest);
    // A client (or another member, for its client) reads the blob; a warm job or prefetch waits for its commit.
    if (existing?.joinable) return { fill: existing, joined: true, release: existing.hold(reads) };
    const freeSlot = this.#slots.take(starter);
    const started = performance.now();
    const fill = new Fill(digest, source, this.store, this.opts);
    this.#fills.set(digest, fill);
    // Removed in the same tick the fill finishes, so nobody joins a fill whose temp file is gone.
    const onChange = () => {
      if (fill.state === 'done' || fill.state === 'failed') {
        fill.off('change', onChange);
        if (this.#fills.get(digest) === fill) this.#fills.delete(digest);
        freeSlot();
        onFinish?.(fill, performance.now() - started);
      }
    };
    fill.on('change', onChange);
    const release = fill.hold(reads);
    void fill.run();
    return { fill, joined: false, release };
  }

  /** join for a warm job: waits for a free slot rather than failing (until signal aborts). */
  async joinWhenFree(digest: string, source: BlobSource, onFinish?: FinishListener, signal?: AbortSignal, reads = false): Promise<JoinedFill> {
    for (;;) {
      try {
        return this.join(digest, source, 'warm', onFinish, reads);
      } catch (err) {
        if (!(err instanceof RegistryError && err.kind === 'TOO_MANY_REQUESTS')) throw err;
      }
      await this.#slots.free(signal);
    }
  }

  get size(): number {
    return this.#fills.size;
  }

  /** Background work that starts fills (prefetches): settled() waits for it too. */
  track(task: Promise<void>): void {
    this.#tasks.add(task);
    void task.finally(() => this.#tasks.delete(task));
  }

  /** Resolves once every running fill and tracked task has finished (used by graceful shutdown). */
  async settled(): Promise<void> {
    while (this.#fills.size > 0 || this.#tasks.size > 0) {
      await Promise.all([...[...this.#fills.values()].map((f) => f.finished), ...this.#tasks]);
    }
  }
}
