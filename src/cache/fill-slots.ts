import { RegistryError } from '../http/errors.js';
import { once } from '../util/once.js';
import { Turns } from '../util/turns.js';

export interface FillLimits {
  /** Fills running at once, whoever started them (cache.max_fills). */
  maxFills: number;
  /** Fills one client address may have started and running at once (cache.max_fills_per_client). */
  maxPerClient: number;
}

/** Who starts a fill: a client (by address; undefined when unknown) or a warm job. */
export type FillStarter = { client: string | undefined } | 'warm';

/** Seconds a refused client is told to wait: long enough for a layer or two to finish. */
const RETRY_AFTER_SECONDS = 5;

/**
 * Counts the fills running, in all and per client address. A client over a limit is refused (429), since a
 * client may ask for many large blobs and disconnect; a warm job waits for a free slot instead, and counts only
 * against the global limit (the admin started it, not a client).
 */
export class FillSlots {
  #running = 0;
  readonly #perClient = new Map<string, number>();
  readonly #waiting = new Turns();

  constructor(private readonly limits: FillLimits) {}

  /** Takes a slot for a fill about to start, or throws TOO_MANY_REQUESTS; returns the (idempotent) release. */
  take(starter: FillStarter): () => void {
    if (this.#running >= this.limits.maxFills) {
      throw tooMany(`${this.#running} blob downloads are running, the most this mirror runs at once (cache.max_fills)`);
    }
    const client = starter === 'warm' ? null : (starter.client ?? 'unknown');
    const mine = client === null ? 0 : (this.#perClient.get(client) ?? 0);
    if (client !== null && mine >= this.limits.maxPerClient) {
      throw tooMany(`this client has ${mine} blob downloads running, the most one client may start (cache.max_fills_per_client)`);
    }
    this.#running++;
    if (client !== null) this.#perClient.set(client, mine + 1);
    return once(() => {
      this.#running--;
      if (client !== null) {
        const left = this.#perClient.get(client)! - 1;
        if (left === 0) this.#perClient.delete(client);
        else this.#perClient.set(client, left);
      }
      this.#waiting.next();
    });
  }

  /** Resolves once a slot is free (a client may still take it first: check again with take), or rejects on abort. */
  async free(signal?: AbortSignal): Promise<void> {
    while (this.#running >= this.limits.maxFills) {
      signal?.throwIfAborted();
      await this.#waiting.wait(signal);
    }
  }
}

function tooMany(message: string): RegistryError {
  return new RegistryError('TOO_MANY_REQUESTS', `${message}; try again shortly`, { headers: { 'retry-after': String(RETRY_AFTER_SECONDS) } });
}
