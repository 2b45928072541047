import type { BlobWriter } from './blob-store.js';
import type { DigestHasher } from './digest.js';

const READ_BACK = 1024 * 1024;

/**
 * Bytes written at their offsets in any order (the segments of a ranged fill), with the sha256 following their
 * contiguous prefix: bytes that land right at the prefix are hashed as they are; bytes that land past a gap wait
 * in the writer and are read back once the gap has filled. Only the writer holds them, not memory.
 */
export class PlacedBytes {
  /** Written ranges [start, end) not hashed yet, sorted by start. */
  #ahead: Array<{ start: number; end: number }> = [];
  #following = false;
  #told = 0;

  constructor(
    private readonly writer: BlobWriter,
    private readonly hasher: DigestHasher,
    /** Called when the hashed prefix has grown: bytes [0, prefix) are written and hashed. */
    private readonly onPrefix: (prefix: number) => void,
  ) {}

  async place(offset: number, bytes: Buffer[]): Promise<void> {
    await this.writer.write(offset, bytes);
    const end = offset + bytes.reduce((n, b) => n + b.byteLength, 0);
    if (!this.#following && offset <= this.hasher.hashed && end > this.hasher.hashed) {
      let at = offset;
      for (const b of bytes) {
        this.hasher.add(at, b);
        at += b.byteLength;
      }
    } else {
      this.#ahead.push({ start: offset, end });
      this.#ahead.sort((a, b) => a.start - b.start);
    }
    await this.#follow();
  }

  /** Hashes what the writer holds contiguously after the prefix; one caller at a time does it. */
  async #follow(): Promise<void> {
    if (this.#following) return;
    this.#following = true;
    try {
      for (;;) {
        const prefix = this.hasher.hashed;
        this.#ahead = this.#ahead.filter((r) => r.end > prefix);
        const next = this.#ahead[0];
        if (!next || next.start > prefix) break;
        const buffer = Buffer.allocUnsafe(Math.min(READ_BACK, next.end - prefix));
        const n = await this.writer.read(buffer, prefix);
        if (n === 0) throw new Error(`blob ${this.writer.digest}: the written bytes end before byte ${prefix}`);
        this.hasher.add(prefix, buffer.subarray(0, n));
      }
    } finally {
      this.#following = false;
    }
    if (this.hasher.hashed > this.#told) {
      this.#told = this.hasher.hashed;
      this.onPrefix(this.#told);
    }
  }
}
