import type { Logger } from 'pino';
import type { RegistryError } from '../http/errors.js';
import { OncePerWindow } from '../util/once-per-window.js';

const WINDOW_MS = 60_000;

/**
 * The warn line of an upstream failure (credentials rejected, token service down, 5xx after the retries, TLS,
 * timeout, offline or marked-down refusals), with the message the client is answered. One line per cause (error
 * kind) per minute for each upstream, saying how many more there were since the last: a broken upstream does not
 * flood the log.
 */
export class UpstreamFailureLog {
  readonly #limiter: OncePerWindow;

  constructor(
    private readonly log: Logger,
    now: () => number,
  ) {
    this.#limiter = new OncePerWindow(WINDOW_MS, now);
  }

  report(err: RegistryError): void {
    const since = this.#limiter.admit(err.kind);
    if (since === null) return;
    const fields = { kind: err.kind, code: err.code, status: err.status, error: err.message, ...(since ? { repeatedSinceLastLine: since } : {}) };
    this.log.warn(fields, err.kind === 'UPSTREAM_OFFLINE' ? 'upstream request refused: offline' : 'upstream request failed');
  }
}
