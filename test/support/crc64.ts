/**
 * CRC-64/ECMA-182 as OSS reports it in x-oss-hash-crc64ecma (reflected polynomial 0xC96C5795D7870F42, initial value
 * and final xor all ones; the CRC-64/XZ parameters): an unsigned decimal string. The 64-bit state is kept as two
 * 32-bit halves so a table lookup per byte stays in plain integer arithmetic.
 */
const POLY_HI = 0xc96c5795;
const POLY_LO = 0xd7870f42;
const TABLE_HI = new Uint32Array(256);
const TABLE_LO = new Uint32Array(256);

for (let n = 0; n < 256; n++) {
  let hi = 0;
  let lo = n;
  for (let bit = 0; bit < 8; bit++) {
    const carry = lo & 1;
    lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
    hi = hi >>> 1;
    if (carry) {
      lo = (lo ^ POLY_LO) >>> 0;
      hi = (hi ^ POLY_HI) >>> 0;
    }
  }
  TABLE_HI[n] = hi;
  TABLE_LO[n] = lo;
}

export function crc64ecma(...chunks: Uint8Array[]): string {
  let hi = 0xffffffff;
  let lo = 0xffffffff;
  for (const chunk of chunks) {
    for (let k = 0; k < chunk.length; k++) {
      const i = (lo ^ chunk[k]!) & 0xff;
      lo = ((lo >>> 8) | (hi << 24)) ^ TABLE_LO[i]!;
      hi = (hi >>> 8) ^ TABLE_HI[i]!;
    }
  }
  return ((BigInt(~hi >>> 0) << 32n) | BigInt(~lo >>> 0)).toString();
}
