// The admin page's chart data: per-minute traffic over the last hour, from samples of the running totals.
import { describe, expect, it } from 'vitest';
import { TrafficHistory } from '../../src/observability/traffic-history.js';
import type { TrafficTotals } from '../../src/observability/traffic.js';

const MINUTE = 60_000;
const T0 = Date.UTC(2026, 11, 7, 10, 0, 0);

function history(minutes = 60) {
  let now = T0 + 30_000; // half a minute into 10:00
  const totals: TrafficTotals = { outcomes: { hit: 0, miss: 0, joined: 0, stale: 0 }, served: 0, upstream: 0 };
  const h = new TrafficHistory({ read: async () => structuredClone(totals), now: () => now, minutes });
  return {
    h,
    totals,
    at: (ms: number) => (now = ms),
    traffic(served: number, upstream: number, outcomes: Partial<TrafficTotals['outcomes']> = {}) {
      totals.served += served;
      totals.upstream += upstream;
      for (const [k, v] of Object.entries(outcomes)) totals.outcomes[k as keyof typeof outcomes] += v;
    },
  };
}

describe('TrafficHistory', () => {
  it('attributes traffic to the minute it happened in, the current minute up to now', async () => {
    const { h, at, traffic } = history();
    await h.sample(); // start-up, 10:00:30
    traffic(1000, 400, { hit: 3, miss: 1 });
    at(T0 + MINUTE - 2); // the timer a hair early for 10:01
    await h.sample();
    traffic(500, 0, { hit: 1, stale: 1 });
    at(T0 + MINUTE + 20_000);
    expect(await h.minutes()).toEqual([
      { at: '2026-12-07T10:00:00.000Z', served: 1000, upstream: 400, lookups: 4, hits: 3, hitRatio: 0.75 },
      { at: '2026-12-07T10:01:00.000Z', served: 500, upstream: 0, lookups: 2, hits: 2, hitRatio: 1 },
    ]);
  });

  it('leaves out minutes without samples and reports a minute without lookups with no hit ratio', async () => {
    const { h, at, traffic } = history();
    await h.sample();
    traffic(10, 10);
    at(T0 + 5 * MINUTE); // the process was stopped (or asleep) in between
    await h.sample();
    at(T0 + 5 * MINUTE + 1000);
    const minutes = await h.minutes();
    expect(minutes.map((m) => m.at)).toEqual(['2026-12-07T10:00:00.000Z', '2026-12-07T10:05:00.000Z']);
    expect(minutes[0]).toMatchObject({ served: 10, lookups: 0, hitRatio: null });
    expect(minutes[1]).toMatchObject({ served: 0, upstream: 0 });
  });

  it('reports only the minutes of its window', async () => {
    const { h, at, traffic } = history(3);
    for (let minute = 0; minute < 10; minute++) {
      at(T0 + minute * MINUTE);
      await h.sample();
      traffic(minute, 0);
    }
    at(T0 + 9 * MINUTE + 1000);
    const minutes = await h.minutes();
    expect(minutes.map((m) => [m.at.slice(11, 16), m.served])).toEqual([
      ['10:07', 7],
      ['10:08', 8],
      ['10:09', 9],
    ]);
  });
});
