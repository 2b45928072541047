/** Inclusive byte offsets. */
export type ByteRange = { start: number; end: number };

export type RangeRequest = ByteRange | 'unsatisfiable' | null;

/**
 * A single byte range from a Range header against a resource of `size` bytes (RFC 9110 14.2).
 * null means "send the whole thing" (no header, other units, several ranges, or syntax the RFC says to ignore).
 */
export function parseRange(header: string | undefined, size: number): RangeRequest {
  if (!header) return null;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Number(m[2]);
  if (start >= size) return 'unsatisfiable';
  if (end < start) return null;
  return { start, end: Math.min(end, size - 1) };
}
