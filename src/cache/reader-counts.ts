/** How many readers each blob has now; a store never deletes a blob that has any. */
export class ReaderCounts {
  readonly #counts = new Map<string, number>();

  inUse(digest: string): boolean {
    return (this.#counts.get(digest) ?? 0) > 0;
  }

  /** Counts a new reader of digest; returns its release (idempotent). */
  acquire(digest: string): () => void {
    this.#counts.set(digest, (this.#counts.get(digest) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.#counts.get(digest) ?? 1) - 1;
      if (n > 0) this.#counts.set(digest, n);
      else this.#counts.delete(digest);
    };
  }
}
