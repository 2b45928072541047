/** The bytes a fill holds in memory: [start, end) of the blob, in arrival order, kept as received (no copies). */
export class FillWindow {
  #chunks: Buffer[] = [];
  /** Blob offset of the first byte held. */
  start = 0;
  /** Bytes held. */
  bytes = 0;

  get end(): number {
    return this.start + this.bytes;
  }

  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.bytes += chunk.length;
  }

  /** The held bytes from offset on (offset within the window), the first chunk cut to start there. */
  from(offset: number): Buffer[] {
    const parts: Buffer[] = [];
    let at = this.start;
    for (const chunk of this.#chunks) {
      const end = at + chunk.length;
      if (end > offset) parts.push(at >= offset ? chunk : chunk.subarray(offset - at));
      at = end;
    }
    return parts;
  }

  /** Up to max bytes at position (at or after start), without a copy. */
  slice(position: number, max: number): Buffer {
    // Readers are mostly near the newest bytes: look from the end.
    let offset = this.end;
    for (let i = this.#chunks.length - 1; i >= 0; i--) {
      const chunk = this.#chunks[i]!;
      offset -= chunk.length;
      if (position >= offset) return chunk.subarray(position - offset, Math.min(chunk.length, position - offset + max));
    }
    throw new Error(`memory has no byte ${position}`);
  }

  /** Drops chunks from the front while drop(end of the chunk) says so; whether any was dropped. */
  dropWhile(drop: (chunkEnd: number) => boolean): boolean {
    let dropped = false;
    while (this.#chunks.length && drop(this.start + this.#chunks[0]!.length)) {
      const chunk = this.#chunks.shift()!;
      this.start += chunk.length;
      this.bytes -= chunk.length;
      dropped = true;
    }
    return dropped;
  }

  /** Lets go of everything; the window is empty at offset. */
  clear(offset: number): void {
    this.#chunks = [];
    this.bytes = 0;
    this.start = offset;
  }
}
