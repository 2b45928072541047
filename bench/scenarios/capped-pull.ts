import { Fixtures, imageBytes } from '../fixtures.js';
import { pullEachWay } from '../pull-ways.js';
import type { Scenario } from '../scenario.js';
import { atLeast, atMost, fmt, metric, MiB, ratio } from '../stats.js';

/** OSS's per-connection traffic limit as the issue measured it. */
const CAP = '20m';
const WAYS = [
  'direct from the upstream',
  'through acr-mirror',
  'through acr-mirror, fill_connections = 1 and prefetch = false (before)',
  'through Distribution proxy',
] as const;

/**
 * Scenario 7: scenario 2's cold skopeo pull from an upstream whose OSS caps each connection at 20 MiB/s (nginx
 * limit_rate), directly, through acr-mirror with its defaults (ranged fills, layers fetched ahead), through
 * acr-mirror with both off, and through Distribution's proxy.
 */
export const cappedPull: Scenario = {
  id: 7,
  title: 'Cold pull of a 5-layer image with skopeo, OSS capped at 20 MiB/s per connection',
  async run(ctx) {
    const { stack, sizes } = ctx;
    ctx.progress("starting an upstream whose OSS is capped at 20 MiB/s per connection");
    const up = await stack.startUpstream({ ossLimitRate: CAP });
    try {
      const image = await new Fixtures(up).image({ repo: 'bench/capped', tag: 'v1', layers: [...sizes.pullLayers] });
      const size = imageBytes(image);
      const figures = await pullEachWay(ctx, up, image, [
        { name: WAYS[0], start: async () => null },
        { name: WAYS[1], start: () => stack.startMirror(undefined, { upstream: up }) },
        { name: WAYS[2], start: () => stack.startMirror(undefined, { upstream: up, settings: { upstream: { fill_connections: 1 }, cache: { prefetch: false } } }) },
        { name: WAYS[3], start: () => stack.startDistributionProxy(up) },
      ]);
      const wall = WAYS.map((w) => metric(`wall time, ${w}`, 's', figures.get(w)!.times));
      const [direct, ours, before, peer] = [wall[0]!, wall[1]!, wall[2]!, wall[3]!];
      const bytes = WAYS.map((w) => metric(`bytes from the upstream / image size, ${w}`, 'x', figures.get(w)!.pulled));
      return {
        metrics: [
          ...wall,
          ...bytes,
          ...WAYS.map((w) => metric(`CPU time of the whole machine, ${w}`, 's', figures.get(w)!.cpu.map((u) => u.machine))),
        ],
        checks: [
          atLeast('acr-mirror cold pull >= 3x faster than the direct pull at the cap', ratio(direct, ours), 3),
          atMost('acr-mirror upstream bytes = 1.00x the image', bytes[1]!.median, 1.005),
          { target: '(reference) acr-mirror before (one connection, no prefetch) vs the direct pull', measured: `${fmt(ratio(before, direct))}x`, pass: true },
          { target: '(reference) Distribution proxy vs the direct pull', measured: `${fmt(ratio(peer, direct))}x`, pass: true },
        ],
        notes: [
          `Image: ${sizes.pullLayers.length} layers, ${fmt(size / MiB)} MiB, as in scenario 2, on a second upstream whose OSS ` +
            `stand-in sends each blob download at most 20 MiB/s (nginx limit_rate ${CAP}, per request like OSS's x-oss-traffic-limit). ` +
            'Every cache starts empty for each run; acr-mirror runs with its defaults (fill_connections = 4, fill_segment_size = 8MiB, ' +
            'cache.prefetch = true) and, as the before figure, with fill_connections = 1 and cache.prefetch = false.',
        ],
      };
    } finally {
      await up.stop();
    }
  },
};
