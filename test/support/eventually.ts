export interface EventuallyOptions {
  /** How long to keep trying (default 5 s). */
  timeoutMs?: number;
  /** The pause between tries (default 20 ms). */
  intervalMs?: number;
  /** Put before the last failure when the time is up, to say what was awaited. */
  message?: string;
}

/**
 * Retries an assertion until it passes or the time is up, then throws its last failure. Returns what the
 * assertion returned, so it can also wait for a value.
 */
export async function eventually<T>(assertion: () => T | Promise<T>, options: EventuallyOptions = {}): Promise<T> {
  const { timeoutMs = 5000, intervalMs = 20, message } = options;
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await assertion();
    } catch (err) {
      if (Date.now() > end) {
        if (message === undefined) throw err;
        throw new Error(`${message} (not within ${timeoutMs} ms): ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }
}
