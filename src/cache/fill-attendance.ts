import { RegistryError } from '../http/errors.js';
import { once } from '../util/once.js';

/**
 * Who follows a fill: its readers and holders (a request about to read, a warm job waiting for the commit).
 * Once nobody has followed it for graceMs, `signal` aborts: a client that asked for a large blob and went away
 * must not keep the download (and its temp file) going. Without graceMs it never aborts.
 */
export class FillAttendance {
  #count = 0;
  #timer: NodeJS.Timeout | null = null;
  #ended = false;
  readonly #abandon = new AbortController();

  constructor(
    private readonly digest: string,
    private readonly graceMs: number | undefined,
  ) {}

  /** Aborts when the fill is abandoned; its reason is the error the fill fails with. */
  get signal(): AbortSignal {
    return this.#abandon.signal;
  }

  /** One more follower; returns its (idempotent) leave. */
  hold(): () => void {
    this.#change(1);
    return once(() => this.#change(-1));
  }

  /** The fill has ended: nothing left to abandon. */
  end(): void {
    this.#ended = true;
    this.#clear();
  }

  #change(delta: number): void {
    this.#count += delta;
    this.#clear();
    const graceMs = this.graceMs;
    if (this.#count > 0 || graceMs === undefined || this.#ended) return;
    this.#timer = setTimeout(() => {
      this.#abandon.abort(new RegistryError('INTERNAL', `blob ${this.digest}: nobody read its download for ${graceMs} ms; abandoned`));
    }, graceMs);
    this.#timer.unref();
  }

  #clear(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
