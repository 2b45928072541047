/**
 * Lets one event per key through per window (e.g. one log line per cause and upstream per minute), and counts the
 * ones it held back so the next line can say how many there were. Keys should be few (causes, upstreams): the
 * entries of windows that ended are dropped as new keys arrive.
 */
export class OncePerWindow {
  readonly #windows = new Map<string, { until: number; held: number }>();

  constructor(
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** null: held back (one went through within the window); else how many were held back since the last one. */
  admit(key: string): number | null {
    const at = this.now();
    const window = this.#windows.get(key);
    if (window && at < window.until) {
      window.held++;
      return null;
    }
    if (!window) this.#dropEnded(at);
    this.#windows.set(key, { until: at + this.windowMs, held: 0 });
    return window?.held ?? 0;
  }

  #dropEnded(at: number): void {
    for (const [key, window] of this.#windows) if (at >= window.until && window.held === 0) this.#windows.delete(key);
  }
}
