import { createHash, type Hash } from 'node:crypto';

/** Proof that `size` bytes hashed to `digest`: only a DigestHasher issues one, after comparing the digest. */
export class VerifiedDigest {
  readonly #issued = true;

  /** @internal use DigestHasher.verify() */
  constructor(
    readonly digest: string,
    readonly size: number,
    token: symbol,
  ) {
    if (token !== ISSUER) throw new Error('a VerifiedDigest is issued only by a DigestHasher');
  }

  /** Whether value is a VerifiedDigest a hasher issued (not a look-alike object). */
  static isIssued(value: unknown): value is VerifiedDigest {
    return typeof value === 'object' && value !== null && #issued in value;
  }
}

const ISSUER = Symbol('DigestHasher');

/** Throws unless verified is a hasher's proof for digest over exactly `written` bytes. */
export function checkVerified(verified: VerifiedDigest, digest: string, written: number): void {
  if (!VerifiedDigest.isIssued(verified)) throw new Error(`blob ${digest}: commit refused, the digest was not verified`);
  if (verified.digest !== digest || verified.size !== written) {
    throw new Error(`blob ${digest}: commit refused, verified ${verified.digest} over ${verified.size} bytes but ${written} were written`);
  }
}

/**
 * sha256 of a blob's bytes, following its contiguous prefix: bytes may be added again (a resumed transfer that
 * overlaps) and only the part past the prefix is hashed. Bytes past a gap are refused: the caller adds them once
 * the gap is filled.
 */
export class DigestHasher {
  readonly #hash: Hash = createHash('sha256');
  #prefix = 0;
  #actual: string | null = null;

  constructor(readonly expected: string) {}

  /** Bytes [0, hashed) are hashed. */
  get hashed(): number {
    return this.#prefix;
  }

  add(offset: number, bytes: Uint8Array): void {
    if (this.#actual !== null) throw new Error('digest already computed');
    if (offset > this.#prefix) throw new Error(`bytes at ${offset} leave a gap after the hashed prefix (${this.#prefix})`);
    const skip = this.#prefix - offset;
    if (skip >= bytes.byteLength) return;
    this.#hash.update(skip > 0 ? bytes.subarray(skip) : bytes);
    this.#prefix += bytes.byteLength - skip;
  }

  /** Ends the hash: a VerifiedDigest when the bytes match the expected digest, else the digest they have. */
  verify(): { verified: VerifiedDigest } | { actual: string } {
    this.#actual ??= `sha256:${this.#hash.digest('hex')}`;
    if (this.#actual !== this.expected) return { actual: this.#actual };
    return { verified: new VerifiedDigest(this.expected, this.#prefix, ISSUER) };
  }
}
