import type { BlobWriter } from './blob-store.js';
import type { DigestHasher } from './digest.js';

const READ_BACK = 256 * 1024;

/**
 * Bytes written at their offsets in any order (the segments of a ranged fill), with the sha256 following their
 * contiguous prefix: bytes that land right at the prefix are hashed as they are; bytes that land past a gap wait
 * in the writer and are read back once the gap has filled. Only the writer holds them, not memory.
 */
export class PlacedBytes {
  /** Written ranges [start, end) not hashed yet, sorted by start. */
  #ahead: Array<{ start: number; end: number }> = [];
  #following = false;

  constructor(
    private readonly writer: BlobWriter,
    private readonly hasher: DigestHasher,
    /**
     * The hashed prefix has grown by `bytes` (written, and now hashed): bytes [0, prefix) are in. The buffers are
     * not reused: the fill hands them on to its readers, so that a reader keeping up does not read them back.
     */
    private readonly onPrefix: (prefix: number, bytes: Buffer[]) => void,
  ) {}

  async place(offset: number, bytes: Buffer[]): Promise<void> {
    await this.writer.write(offset, bytes);
    const end = offset + bytes.reduce((n, b) => n + b.byteLength, 0);
    if (!this.#following && offset <= this.hasher.hashed && end > this.hasher.hashed) {
      this.#hash(offset, bytes);
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
        this.#hash(prefix, [buffer.subarray(0, n)]);
      }
    } finally {
      this.#following = false;
    }
  }

  /** Hashes bytes at offset (at or before the prefix) and tells of the part that grew the prefix. */
  #hash(offset: number, bytes: Buffer[]): void {
    const grown: Buffer[] = [];
    let at = offset;
    for (const b of bytes) {
      const skip = this.hasher.hashed - at;
      if (skip < b.byteLength) grown.push(skip > 0 ? b.subarray(skip) : b);
      this.hasher.add(at, b);
      at += b.byteLength;
    }
    if (grown.length > 0) this.onPrefix(this.hasher.hashed, grown);
  }
}
