import { type BlobSource, Fill, type FillOptions } from './fill.js';
import type { BlobStore } from './blob-store.js';

/** The fills running now, one per digest: a client asking for a blob being filled joins that fill. */
export class BlobFills {
  readonly #fills = new Map<string, Fill>();
  readonly #tasks = new Set<Promise<void>>();

  constructor(
    private readonly store: BlobStore,
    private readonly opts: FillOptions,
  ) {}

  /** The running fill for digest, if any. */
  running(digest: string): Fill | undefined {
    return this.#fills.get(digest);
  }

  /**
   * Joins the running fill for digest or starts one from source. `joined` tells which; `onFinish` is called
   * once when a fill started here ends (committed or failed).
   */
  join(digest: string, source: BlobSource, onFinish?: (fill: Fill) => void): { fill: Fill; joined: boolean } {
    const existing = this.#fills.get(digest);
    if (existing?.joinable) return { fill: existing, joined: true };
    const fill = new Fill(digest, source, this.store, this.opts);
    this.#fills.set(digest, fill);
    // Removed in the same tick the fill finishes, so nobody joins a fill whose temp file is gone.
    const onChange = () => {
      if (fill.state === 'done' || fill.state === 'failed') {
        fill.off('change', onChange);
        if (this.#fills.get(digest) === fill) this.#fills.delete(digest);
        onFinish?.(fill);
      }
    };
    fill.on('change', onChange);
    void fill.run();
    return { fill, joined: false };
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
