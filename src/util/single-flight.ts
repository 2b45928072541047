/** At most one running call per key; callers that arrive while it runs share its promise. */
export class SingleFlight<K, V> {
  readonly #running = new Map<K, Promise<V>>();

  run(key: K, fn: () => Promise<V>): Promise<V> {
    const running = this.#running.get(key);
    if (running) return running;
    const p = fn().finally(() => this.#running.delete(key));
    this.#running.set(key, p);
    return p;
  }

  get size(): number {
    return this.#running.size;
  }
}
