import { skopeoPull } from '../clients.js';
import { imageBytes } from '../fixtures.js';
import { repeat, upstreamBytes, upstreamQuiet, type Scenario } from '../scenario.js';
import { atMost, fmt, metric, MiB, ratio } from '../stats.js';

type Way = 'direct from the upstream' | 'through acr-mirror' | 'through Distribution proxy';
const WAYS: readonly Way[] = ['direct from the upstream', 'through acr-mirror', 'through Distribution proxy'];

/** Scenario 2: one skopeo pull of a cold image, directly and through each cache (each started empty per run). */
export const coldPull: Scenario = {
  id: 2,
  title: 'Cold pull of a 5-layer image with skopeo',
  async run({ stack, sizes, progress }) {
    const { up } = stack;
    const image = await stack.fixtures.image({ repo: 'bench/pull', tag: 'v1', layers: [...sizes.pullLayers] });
    const size = imageBytes(image);
    const times = new Map<Way, number[]>(WAYS.map((w) => [w, []]));
    const pulled = new Map<Way, number[]>(WAYS.map((w) => [w, []]));
    await repeat(sizes.runs, async (i) => {
      for (const way of WAYS) {
        progress(`${way}, run ${i + 1}/${sizes.runs}`);
        const server =
          way === 'through acr-mirror' ? await stack.startMirror() : way === 'through Distribution proxy' ? await stack.startDistributionProxy() : null;
        try {
          up.proxy.reset();
          const ms = await skopeoPull(up.skopeo, {
            host: server?.host ?? up.registryHost,
            repo: image.repo,
            tag: image.tag,
            out: await stack.newDir('pull'),
            ...(server ? {} : { creds: up.credentials }),
            timeoutMs: 60_000 + (size / (5 * MiB)) * 1000,
          });
          await upstreamQuiet(up.proxy);
          times.get(way)!.push(ms / 1000);
          pulled.get(way)!.push(upstreamBytes(up.proxy) / size);
        } finally {
          await server?.stop();
        }
      }
    });
    const [direct, ours, peer] = WAYS.map((w) => metric(`wall time, ${w}`, 's', times.get(w)!));
    return {
      metrics: [direct!, ours!, peer!, ...WAYS.map((w) => metric(`bytes from the upstream / image size, ${w}`, 'x', pulled.get(w)!))],
      checks: [
        atMost('acr-mirror cold pull <= 1.1x the direct pull', ratio(ours!, direct!), 1.1),
        { target: '(reference) Distribution proxy vs the direct pull', measured: `${fmt(ratio(peer!, direct!))}x`, pass: true },
      ],
      notes: [
        `Image: ${sizes.pullLayers.length} layers, ${fmt(size / MiB)} MiB (manifest + config + gzip layers of incompressible data). ` +
          '`skopeo copy docker://... dir:...`; acr-mirror and Distribution proxy start with an empty cache for every run. ' +
          'Upstream bytes are the 2xx response bodies counted at the fault proxy in front of Distribution and the OSS stand-in, ' +
          'after the upstream has been quiet for 0.5 s.',
      ],
    };
  },
};
