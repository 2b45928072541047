import { Turns } from '../util/turns.js';

/** Runs at most `limit` tasks at once; the others wait their turn in order, or until their signal aborts. */
export class Limiter {
  #running = 0;
  readonly #turns = new Turns();

  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    await this.#acquire(signal);
    try {
      return await task();
    } finally {
      this.#running--;
      this.#turns.next();
    }
  }

  #acquire(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    if (this.#running < this.limit) {
      this.#running++;
      return Promise.resolve();
    }
    return this.#turns.wait(signal, () => this.#running++);
  }
}
