import { type TrafficTotals, hitRatio } from './traffic.js';

const MINUTE = 60_000;
/** A sample taken a little before its minute (timer and clock disagreeing) still counts for that minute. */
const EARLY_MS = 1000;

/** What happened during one minute (the current one up to now). */
export interface TrafficMinute {
  /** The minute's start. */
  at: string;
  served: number;
  upstream: number;
  /** Client manifest and blob lookups, and how many were answered from the cache (hit or stale). */
  lookups: number;
  hits: number;
  hitRatio: number | null;
}

interface Sample {
  at: number;
  totals: TrafficTotals;
}

export interface TrafficHistoryDeps {
  read: () => Promise<TrafficTotals>;
  now: () => number;
  /** How far back it remembers. */
  minutes: number;
}

/**
 * Per-minute traffic over the last hour, in memory: the running totals are sampled at each minute's start (a ring of
 * samples), and a minute's traffic is the difference between its sample and the next (or the live totals). Minutes
 * before the first sample, or while the process was not running, are absent.
 */
export class TrafficHistory {
  readonly #samples: Sample[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: TrafficHistoryDeps) {}

  /** Takes a sample now, then one at the start of every minute until stop(). */
  start(): void {
    const next = () => {
      void this.sample();
      this.#timer = setTimeout(next, MINUTE - (this.deps.now() % MINUTE)).unref();
    };
    next();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async sample(): Promise<void> {
    const at = this.deps.now();
    this.#samples.push({ at, totals: await this.deps.read() });
    const oldest = at - (this.deps.minutes + 1) * MINUTE;
    while (this.#samples.length > 2 && this.#samples[0]!.at < oldest) this.#samples.shift();
  }

  /** The remembered minutes with traffic figures, oldest first; the last one is the current minute so far. */
  async minutes(): Promise<TrafficMinute[]> {
    const live: Sample = { at: this.deps.now(), totals: await this.deps.read() };
    const since = minuteOf(live.at) - (this.deps.minutes - 1) * MINUTE;
    const byMinute = new Map<number, TrafficTotals>();
    const samples = [...this.#samples, live];
    for (let i = 0; i + 1 < samples.length; i++) {
      const minute = minuteOf(samples[i]!.at + EARLY_MS);
      if (minute < since) continue;
      byMinute.set(minute, add(byMinute.get(minute), difference(samples[i + 1]!.totals, samples[i]!.totals)));
    }
    return [...byMinute].sort(([a], [b]) => a - b).map(([minute, t]) => view(minute, t));
  }
}

const minuteOf = (ms: number) => Math.floor(ms / MINUTE) * MINUTE;

const difference = (later: TrafficTotals, earlier: TrafficTotals) => combine(later, earlier, -1);
const add = (a: TrafficTotals | undefined, b: TrafficTotals) => (a ? combine(a, b, 1) : b);

function combine(a: TrafficTotals, b: TrafficTotals, sign: 1 | -1): TrafficTotals {
  const [o, p] = [a.outcomes, b.outcomes];
  return {
    outcomes: { hit: o.hit + sign * p.hit, miss: o.miss + sign * p.miss, joined: o.joined + sign * p.joined, stale: o.stale + sign * p.stale },
    served: a.served + sign * b.served,
    upstream: a.upstream + sign * b.upstream,
  };
}

function view(minute: number, t: TrafficTotals): TrafficMinute {
  const { hit, miss, joined, stale } = t.outcomes;
  return {
    at: new Date(minute).toISOString(),
    served: t.served,
    upstream: t.upstream,
    lookups: hit + miss + joined + stale,
    hits: hit + stale,
    hitRatio: hitRatio(t.outcomes),
  };
}
