import { createHash, randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CpuUse } from '../cpu-accounting.js';
import { imageBytes } from '../fixtures.js';
import { skopeoPull } from '../clients.js';
import { pullEachWay } from '../pull-ways.js';
import type { Scenario } from '../scenario.js';
import { atMost, fmt, metric, MiB, ratio } from '../stats.js';

const WARMED = 'through acr-mirror, process warmed by another cold pull (reference)';
type Way = 'direct from the upstream' | 'through acr-mirror' | 'through Distribution proxy' | typeof WARMED;
const WAYS: readonly Way[] = ['direct from the upstream', 'through acr-mirror', 'through Distribution proxy', WARMED];

/** Scenario 2: one skopeo pull of a cold image, directly and through each cache (each started empty per run). */
export const coldPull: Scenario = {
  id: 2,
  title: 'Cold pull of a 5-layer image with skopeo',
  async run(ctx) {
    const { stack, sizes } = ctx;
    const { up } = stack;
    const image = await stack.fixtures.image({ repo: 'bench/pull', tag: 'v1', layers: [...sizes.pullLayers] });
    const size = imageBytes(image);
    const other = await stack.fixtures.image({ repo: 'bench/warm-up', tag: 'v1', layers: [...sizes.pullLayers] });
    // A mirror that has served before: V8 has compiled its hot paths (a fresh process spends CPU on that meanwhile).
    const warmedMirror = async () => {
      const mirror = await stack.startMirror();
      await skopeoPull(up.skopeo, { host: mirror.host, repo: other.repo, tag: other.tag, out: await stack.newDir('warm-up'), timeoutMs: 120_000 });
      await sleep(1000);
      return mirror;
    };
    const figures = await pullEachWay(ctx, up, image, [
      { name: 'direct from the upstream', start: async () => null },
      { name: 'through acr-mirror', start: () => stack.startMirror() },
      { name: 'through Distribution proxy', start: () => stack.startDistributionProxy() },
      { name: WARMED, start: warmedMirror },
    ]);
    const times = new Map(WAYS.map((w) => [w, figures.get(w)!.times]));
    const pulled = new Map(WAYS.map((w) => [w, figures.get(w)!.pulled]));
    const cpu = new Map(WAYS.map((w) => [w, figures.get(w)!.cpu]));
    const [direct, ours, peer, warmed] = WAYS.map((w) => metric(`wall time, ${w}`, 's', times.get(w)!));
    const cpuMetric = (name: string, way: Way, unit: string, of: (u: CpuUse) => number) => metric(`${name}, ${way}`, unit, cpu.get(way)!.map(of));
    const ourCpu = cpuMetric('CPU time of the cache process', 'through acr-mirror', 's', (u) => u.processes[0]!);
    const cores = availableParallelism();
    return {
      metrics: [
        direct!,
        ours!,
        peer!,
        warmed!,
        ...WAYS.map((w) => metric(`bytes from the upstream / image size, ${w}`, 'x', pulled.get(w)!)),
        ...WAYS.map((w) => cpuMetric('machine busy', w, '%', (u) => u.busy * 100)),
        ...WAYS.map((w) => cpuMetric('CPU time of the whole machine', w, 's', (u) => u.machine)),
        ...WAYS.map((w) => cpuMetric('CPU time of skopeo', w, 's', (u) => u.exitedChildren)),
        ourCpu,
        cpuMetric('CPU time of the cache process', 'through Distribution proxy', 's', (u) => u.processes[0]!),
        cpuMetric('CPU time of the cache process', WARMED, 's', (u) => u.processes[0]!),
        metric('(reference) sha256 of as many bytes in memory, one core', 's', [hashSeconds(size)]),
      ],
      checks: [
        atMost('acr-mirror cold pull <= 1.1x the direct pull', ratio(ours!, direct!), 1.1),
        { target: '(reference) Distribution proxy vs the direct pull', measured: `${fmt(ratio(peer!, direct!))}x`, pass: true },
        { target: '(reference) acr-mirror, process warmed by another cold pull, vs the direct pull', measured: `${fmt(ratio(warmed!, direct!))}x`, pass: true },
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
          'receives: its CPU time, on cores the direct pull already keeps busy, is what the 1.1x target has to fit in. ' +
          'The target is checked on a freshly started mirror; the reference row pulls the image through a mirror that first ' +
          'pulled another image of the same size (its cache still cold for this one): the CPU a new process spends compiling ' +
          'its hot paths, which a long-running mirror pays once.',
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
