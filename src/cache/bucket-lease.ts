import type { OssObjects } from './oss-objects.js';

export interface LeaseOptions {
  objects: OssObjects;
  /** The configured key prefix ("" or ending in /): leases live at <prefix>leases/<name>/<generation>. */
  prefix: string;
  name: string;
  /** Says who holds the lease (e.g. host:pid:random); unique per process. */
  holder: string;
  now: () => number;
  ttlMs: number;
  /** The most the replicas' clocks may differ (plus a request's latency); a holder stops this long before expiry. */
  skewMarginMs: number;
}

interface Generation {
  n: number;
  key: string;
  lastModified: number;
}

const DIGITS = 12;

/**
 * A lease one replica at a time holds, kept as a sequence of generations: objects `<prefix>leases/<name>/<n>` (n
 * zero-padded) with body {holder, expiresAt}. To take or renew the lease a replica writes generation n+1 over the
 * newest n it listed, with x-oss-forbid-overwrite: of all replicas writing n+1 exactly one succeeds (the others get
 * 409 FileAlreadyExists). A replica takes over another's generation only once the other's expiresAt lies
 * skewMarginMs in the past by its own clock, and a holder acts only until skewMarginMs before its own expiresAt, so
 * with clocks less than skewMarginMs apart their times as holder never overlap. A write that succeeded for a
 * generation already superseded (the listing was stale and the newer generation's predecessors deleted) is caught
 * by listing again after the write: the lease is held only if the written generation is then the newest.
 */
export class BucketLease {
  readonly #dir: string;
  /** This replica's clock: until when it may act as holder (0: it does not hold the lease). */
  #validUntil = 0;
  /** The generation this replica wrote last. */
  #generation = 0;

  constructor(private readonly opts: LeaseOptions) {
    this.#dir = `${opts.prefix}leases/${opts.name}/`;
  }

  holds(): boolean {
    return this.opts.now() < this.#validUntil;
  }

  /** Takes the lease if free, renews it if held and past half its time; true while this replica holds it. */
  async acquire(): Promise<boolean> {
    const { now, ttlMs, skewMarginMs, holder } = this.opts;
    const newest = (await this.#generations()).at(-1);
    if (newest) {
      const body = await this.opts.objects.read(newest.key);
      if (body === null) return this.#lost(); // deleted between listing and reading: ask again next time
      // A body this code did not write counts as a lease of nobody's, written when the object was.
      const lease = parseLease(body) ?? { holder: '', expiresAt: newest.lastModified + ttlMs };
      const own = lease.holder === holder;
      if (own && now() < lease.expiresAt - ttlMs / 2) return this.holds();
      if (!own && now() <= lease.expiresAt + skewMarginMs) return this.#lost();
    }
    const next = (newest?.n ?? 0) + 1;
    const startedAt = now();
    const body = Buffer.from(JSON.stringify({ holder, expiresAt: startedAt + ttlMs }));
    if (!(await this.opts.objects.create(this.#key(next), body))) return this.#lost();
    const after = await this.#generations();
    if (after.at(-1)!.n !== next) return this.#lost();
    this.#validUntil = startedAt + ttlMs - skewMarginMs;
    this.#generation = next;
    for (const old of after.slice(0, -1)) await this.opts.objects.delete(old.key).catch(() => {}); // the next writer deletes what is left
    return this.holds();
  }

  /** Gives the lease up at once (shutdown): stops acting, then writes the next generation as already expired. */
  async release(): Promise<void> {
    if (!this.holds()) return;
    this.#validUntil = 0;
    await this.opts.objects.create(this.#key(this.#generation + 1), Buffer.from(JSON.stringify({ holder: this.opts.holder, expiresAt: 0 })));
  }

  async #generations(): Promise<Generation[]> {
    const found: Generation[] = [];
    for await (const o of this.opts.objects.list(this.#dir)) {
      const name = o.key.slice(this.#dir.length);
      if (/^\d+$/.test(name)) found.push({ n: Number(name), key: o.key, lastModified: o.lastModified });
    }
    return found.sort((a, b) => a.n - b.n);
  }

  #key(n: number): string {
    return this.#dir + String(n).padStart(DIGITS, '0');
  }

  #lost(): false {
    this.#validUntil = 0;
    return false;
  }
}

function parseLease(body: Buffer): { holder: string; expiresAt: number } | null {
  try {
    const lease = JSON.parse(body.toString('utf8')) as { holder?: unknown; expiresAt?: unknown };
    return typeof lease.holder === 'string' && typeof lease.expiresAt === 'number' ? { holder: lease.holder, expiresAt: lease.expiresAt } : null;
  } catch {
    return null;
  }
}
