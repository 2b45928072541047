/** A count of things that may be held at once (connections); taking one never waits: it is there or not. */
export class Slots {
  #held = 0;

  constructor(readonly limit: number) {}

  get held(): number {
    return this.#held;
  }

  tryAcquire(): boolean {
    if (this.#held >= this.limit) return false;
    this.#held++;
    return true;
  }

  release(): void {
    if (this.#held > 0) this.#held--;
  }
}
