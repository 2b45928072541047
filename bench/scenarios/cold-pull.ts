import { createHash, randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import type { CpuUse } from '../cpu-accounting.js';
import { imageBytes } from '../fixtures.js';
import { pullEachWay } from '../pull-ways.js';
import type { Scenario } from '../scenario.js';
import { atMost, fmt, metric, MiB, ratio } from '../stats.js';

type Way = 'direct from the upstream' | 'through acr-mirror' | 'through Distribution proxy';
const WAYS: readonly Way[] = ['direct from the upstream', 'through acr-mirror', 'through Distribution proxy'];

/** Scenario 2: one skopeo pull of a cold image, directly and through each cache (each started empty per run). */
export const coldPull: Scenario = {
  id: 2,
  title: 'Cold pull of a 5-layer image with skopeo',
  async run(ctx) {
    const { stack, sizes } = ctx;
    const { up } = stack;
    const image = await stack.fixtures.image({ repo: 'bench/pull', tag: 'v1', layers: [...sizes.pullLayers] });
    const size = imageBytes(image);
    const figures = await pullEachWay(ctx, up, image, [
      { name: 'direct from the upstream', start: async () => null },
      { name: 'through acr-mirror', start: () => stack.startMirror() },
      { name: 'through Distribution proxy', start: () => stack.startDistributionProxy() },
    ]);
    const times = new Map(WAYS.map((w) => [w, figures.get(w)!.times]));
    const pulled = new Map(WAYS.map((w) => [w, figures.get(w)!.pulled]));
    const cpu = new Map(WAYS.map((w) => [w, figures.get(w)!.cpu]));
    const [direct, ours, peer] = WAYS.map((w) => metric(`wall time, ${w}`, 's', times.get(w)!));
    const cpuMetric = (name: string, way: Way, unit: string, of: (u: CpuUse) => number) => metric(`${name}, ${way}`, unit, cpu.get(way)!.map(of));
    const ourCpu = cpuMetric('CPU time of the cache process', 'through acr-mirror', 's', (u) => u.processes[0]!);
    const cores = availableParallelism();
    return {
      metrics: [
        direct!,
        ours!,
        peer!,
        ...WAYS.map((w) => metric(`bytes from the upstream / image size, ${w}`, 'x', pulled.get(w)!)),
        ...WAYS.map((w) => cpuMetric('machine busy', w, '%', (u) => u.busy * 100)),
        ...WAYS.map((w) => cpuMetric('CPU time of the whole machine', w, 's', (u) => u.machine)),
        ...WAYS.map((w) => cpuMetric('CPU time of skopeo', w, 's', (u) => u.exitedChildren)),
        ourCpu,
        cpuMetric('CPU time of the cache process', 'through Distribution proxy', 's', (u) => u.processes[0]!),
        metric('(reference) sha256 of as many bytes in memory, one core', 's', [hashSeconds(size)]),
      ],
      checks: [
        atMost('acr-mirror cold pull <= 1.1x the direct pull', ratio(ours!, direct!), 1.1),
        { target: '(reference) Distribution proxy vs the direct pull', measured: `${fmt(ratio(peer!, direct!))}x`, pass: true },
        {
          target: `(reference) acr-mirror's CPU time per pull vs the most the target leaves it (0.1x the direct pull on ${cores} cores)`,
          measured: `${fmt(ourCpu.median / (0.1 * direct!.median * cores))}x`,
          pass: true,
        },
      ],
      notes: [
        `Image: ${sizes.pullLayers.length} layers, ${fmt(size / MiB)} MiB (manifest + config + gzip layers of incompressible data). ` +
          '`skopeo copy docker://... dir:...`; acr-mirror and Distribution proxy start with an empty cache for every run. ' +
          'Upstream bytes are the 2xx response bodies counted at the fault proxy in front of Distribution and the OSS stand-in, ' +
          'after the upstream has been quiet for 0.5 s. ' +
          'CPU figures are from /proc over each pull: the whole machine (every state but idle, interrupts included), ' +
          'skopeo, and the cache process. A mirror receives, hashes, stores and sends every byte the direct pull only ' +
          'receives: its CPU time, on cores the direct pull already keeps busy, is what the 1.1x target has to fit in.',
      ],
    };
  },
};

/** Seconds one core takes to sha256 `bytes` bytes already in memory: the least a verifying cache spends on them. */
function hashSeconds(bytes: number): number {
  const chunk = randomBytes(64 * 1024);
  const hash = createHash('sha256');
  const started = performance.now();
  for (let left = bytes; left > 0; left -= chunk.length) hash.update(left >= chunk.length ? chunk : chunk.subarray(0, left));
  hash.digest();
  return (performance.now() - started) / 1000;
}
