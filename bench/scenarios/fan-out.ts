import { availableParallelism } from 'node:os';
import type { BuiltImage } from '../../test/e2e/harness/images.js';
import { skopeoPull } from '../clients.js';
import { measureCpu, type CpuUse } from '../cpu-accounting.js';
import { imageBytes } from '../fixtures.js';
import { repeat, upstreamBytes, upstreamQuiet, type BenchContext, type Scenario } from '../scenario.js';
import type { BenchMirror } from '../mirror.js';
import { atMost, fmt, metric, MiB, ratio } from '../stats.js';

/** Scenario 3: N concurrent pulls of one image into an empty acr-mirror, against one cold pull alone. */
export const fanOut: Scenario = {
  id: 3,
  title: 'Cold fan-out',
  async run(ctx) {
    const { stack, sizes, progress } = ctx;
    const { up } = stack;
    const image = await stack.fixtures.image({ repo: 'bench/fanout', tag: 'v1', layers: [...sizes.fanoutLayers] });
    const size = imageBytes(image);
    const n = sizes.fanoutClients;
    const single: number[] = [];
    const cold: number[] = [];
    const warm: number[] = [];
    const coldCpu: CpuUse[] = [];
    const warmCpu: CpuUse[] = [];
    const pulled: number[] = [];
    await repeat(sizes.runs, async (i) => {
      progress(`one cold pull, run ${i + 1}/${sizes.runs}`);
      await withMirror(ctx, async (mirror) => single.push(await pulls(ctx, mirror, image, 1)));
      const last = i === sizes.runs - 1;
      progress(`${n} concurrent cold pulls${last ? `, then ${n} warm` : ''}, run ${i + 1}/${sizes.runs}`);
      await withMirror(ctx, async (mirror) => {
        up.proxy.reset();
        const coldRun = await measureCpu([mirror.pid], () => pulls(ctx, mirror, image, n));
        cold.push(coldRun.value);
        coldCpu.push(coldRun.cpu);
        await upstreamQuiet(up.proxy);
        pulled.push(upstreamBytes(up.proxy) / size);
        // The reference once: it only shows what the clients themselves cost here.
        if (last) {
          const warmRun = await measureCpu([mirror.pid], () => pulls(ctx, mirror, image, n));
          warm.push(warmRun.value);
          warmCpu.push(warmRun.cpu);
        }
      });
    });
    const one = metric('one cold pull', 's', single);
    const fan = metric(`${n} concurrent cold pulls`, 's', cold);
    const floor = metric(`(reference) ${n} concurrent warm pulls`, 's', warm);
    const bytes = metric('bytes from the upstream / image size', 'x', pulled);
    const cpuMetrics = (pulls: string, runs: CpuUse[]) => [
      metric(`machine busy, ${pulls}`, '%', runs.map((u) => u.busy * 100)),
      metric(`CPU time of the ${n} skopeo clients, ${pulls}`, 's', runs.map((u) => u.exitedChildren)),
      metric(`CPU time of acr-mirror, ${pulls}`, 's', runs.map((u) => u.processes[0]!)),
    ];
    const coldMetrics = cpuMetrics('cold', coldCpu);
    const coldClients = coldMetrics[1]!;
    const cores = availableParallelism();
    return {
      metrics: [one, fan, floor, bytes, ...coldMetrics, ...cpuMetrics('warm (reference)', warmCpu)],
      checks: [
        { target: 'fan-out pulls exactly 1.0x the image size from upstream', measured: pulled.map((p) => `${p.toFixed(4)}x`).join(', '), pass: pulled.every((p) => p === 1) },
        atMost(`${n} cold pulls <= 1.3x one cold pull (wall time)`, ratio(fan, one), 1.3),
        { target: `(reference) ${n} cold pulls vs ${n} warm pulls`, measured: `${fmt(ratio(fan, floor))}x`, pass: true },
        {
          target: `(reference) the ${n} clients' own CPU time / ${cores} cores vs one cold pull`,
          measured: `${fmt(coldClients.median / cores / one.median)}x`,
          pass: true,
        },
      ],
      notes: [
        `Image: ${sizes.fanoutLayers.length} layers, ${fmt(size / MiB)} MiB. Every run starts acr-mirror with an empty cache; ` +
          `wall time runs from starting the ${n} \`skopeo copy\` processes to the last one exiting. After the last run ` +
          'the fan-out is repeated once on the filled cache (warm): what the clients themselves cost on this machine. ' +
          'CPU figures are from /proc over the pulls. The clients\' CPU time divided by the cores is the least wall time ' +
          'the clients alone could take here, however fast the mirror: above 1.3x one cold pull, the target is out of reach on this machine.',
      ],
    };
  },
};

async function withMirror(ctx: BenchContext, body: (mirror: BenchMirror) => Promise<unknown>): Promise<void> {
  const mirror = await ctx.stack.startMirror();
  try {
    await body(mirror);
  } finally {
    await mirror.stop();
  }
}

/** Wall time in seconds of n concurrent skopeo pulls of image through the mirror. */
async function pulls(ctx: BenchContext, mirror: BenchMirror, image: BuiltImage, n: number): Promise<number> {
  const timeoutMs = 120_000 + ((n * imageBytes(image)) / (5 * MiB)) * 1000;
  const outs = await Promise.all(Array.from({ length: n }, () => ctx.stack.newDir('fanout')));
  const started = performance.now();
  await Promise.all(
    outs.map((out) =>
      skopeoPull(ctx.stack.up.skopeo, { host: mirror.host, repo: image.repo, tag: image.tag, out, timeoutMs }),
    ),
  );
  return (performance.now() - started) / 1000;
}
