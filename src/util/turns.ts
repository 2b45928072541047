/** Waiters woken one at a time, longest waiting first; a waiter whose signal aborts leaves the queue. */
export class Turns {
  readonly #waiting: Array<() => void> = [];

  /**
   * Resolves when next() picks this waiter, after onTurn ran synchronously within that next() call (so the waiter
   * can take what was freed before anyone else can); rejects with the signal's reason if it aborts first.
   */
  wait(signal?: AbortSignal, onTurn?: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      const turn = () => {
        signal?.removeEventListener('abort', onAbort);
        onTurn?.();
        resolve();
      };
      const onAbort = () => {
        this.#waiting.splice(this.#waiting.indexOf(turn), 1);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(turn);
    });
  }

  /** Wakes the longest waiting one, if any. */
  next(): void {
    this.#waiting.shift()?.();
  }
}
