/** A client-supplied value shortened for an error message, so a huge one is never echoed back in full. */
export function truncate(s: string): string {
  return s.length > 80 ? `${s.slice(0, 80)}...(${s.length} chars)` : s;
}
