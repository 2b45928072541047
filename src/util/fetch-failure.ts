/** Why fetch() threw: undici wraps the network error (ECONNREFUSED, ...) as the cause of TypeError('fetch failed'). */
export function fetchFailure(err: unknown): string {
  return ((err as Error).cause as Error | undefined)?.message ?? (err as Error).message;
}
