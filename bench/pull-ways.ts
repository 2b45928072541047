import type { BuiltImage } from '../test/e2e/harness/images.js';
import type { Upstream } from '../test/e2e/harness/upstream.js';
import { skopeoPull } from './clients.js';
import { measureCpu, type CpuUse } from './cpu-accounting.js';
import { imageBytes } from './fixtures.js';
import { repeat, upstreamBytes, upstreamQuiet, type BenchContext } from './scenario.js';
import { MiB } from './stats.js';

/** One way of pulling: a cache to start empty for each run (null: straight from the upstream). */
export interface PullWay {
  name: string;
  start(): Promise<{ host: string; pid: number; stop(): Promise<void> } | null>;
}

export interface PullFigures {
  /** Wall time of each run, seconds. */
  times: number[];
  /** Bytes the upstream sent per image size, each run. */
  pulled: number[];
  cpu: CpuUse[];
}

/** Cold skopeo pulls of image from `up`, each way once per run, in turn; figures by way name. */
export async function pullEachWay(ctx: BenchContext, up: Upstream, image: BuiltImage, ways: readonly PullWay[]): Promise<Map<string, PullFigures>> {
  const size = imageBytes(image);
  const figures = new Map<string, PullFigures>(ways.map((w) => [w.name, { times: [], pulled: [], cpu: [] }]));
  await repeat(ctx.sizes.runs, async (i) => {
    for (const way of ways) {
      ctx.progress(`${way.name}, run ${i + 1}/${ctx.sizes.runs}`);
      const server = await way.start();
      try {
        up.proxy.reset();
        const out = await ctx.stack.newDir('pull');
        const { value: ms, cpu: used } = await measureCpu(server ? [server.pid] : [], () =>
          skopeoPull(up.skopeo, {
            host: server?.host ?? up.registryHost,
            repo: image.repo,
            tag: image.tag,
            out,
            ...(server ? {} : { creds: up.credentials }),
            timeoutMs: 60_000 + (size / (5 * MiB)) * 1000,
          }),
        );
        await upstreamQuiet(up.proxy);
        const f = figures.get(way.name)!;
        f.times.push(ms / 1000);
        f.cpu.push(used);
        f.pulled.push(upstreamBytes(up.proxy) / size);
      } finally {
        await server?.stop();
      }
    }
  });
  return figures;
}
