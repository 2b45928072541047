import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MediaType } from '../../test/e2e/harness/images.js';
import { startBareHono } from '../bare-hono.js';
import { loadTest, type LoadResult } from '../clients.js';
import { repeat, type Scenario } from '../scenario.js';
import { atLeast, below, metric, ratio, type Check, type Metric } from '../stats.js';

const ACCEPT = [MediaType.dockerManifest, MediaType.dockerList, MediaType.ociManifest, MediaType.ociIndex].join(', ');

interface Variant {
  method: 'GET' | 'HEAD';
  by: 'tag' | 'digest';
}
const VARIANTS: readonly Variant[] = [
  { method: 'GET', by: 'tag' },
  { method: 'HEAD', by: 'tag' },
  { method: 'GET', by: 'digest' },
  { method: 'HEAD', by: 'digest' },
];

/** Scenario 4: warm manifest GET/HEAD by tag and digest under load, acr-mirror vs Distribution proxy. */
export const manifests: Scenario = {
  id: 4,
  title: 'Warm manifest GET and HEAD',
  async run({ stack, sizes, progress }) {
    const image = await stack.fixtures.image({ repo: 'bench/manifest', tag: 'v1', layers: [64 * 1024] });
    await writeFile(join(stack.nginx.root, 'manifest.json'), image.manifest);
    const [mirror, dist] = await Promise.all([stack.startMirror(), stack.startDistributionProxy()]);
    const servers = [
      { name: 'acr-mirror', url: mirror.url },
      { name: 'Distribution proxy', url: dist.url },
    ] as const;
    const load = (url: string, method: Variant['method'], seconds = sizes.manifestSeconds): Promise<LoadResult> =>
      loadTest({ url, method, headers: { accept: ACCEPT }, connections: sizes.manifestConnections, seconds });
    const path = (v: Variant) => `/v2/${image.repo}/manifests/${v.by === 'tag' ? image.tag : image.digest}`;
    const metrics: Metric[] = [];
    const checks: Check[] = [];
    try {
      progress('warming both caches and the JIT');
      for (const s of servers) for (const v of VARIANTS) await load(`${s.url}${path(v)}`, v.method, 1);

      for (const v of VARIANTS) {
        const label = `${v.method} by ${v.by}`;
        const results = new Map<string, LoadResult[]>(servers.map((s) => [s.name, []]));
        await repeat(sizes.runs, async (i) => {
          for (const s of servers) {
            progress(`${label}, ${s.name}, run ${i + 1}/${sizes.runs}`);
            results.get(s.name)!.push(await load(`${s.url}${path(v)}`, v.method));
          }
        });
        const [ours, peer] = servers.map((s) => figures(`${label}, ${s.name}`, results.get(s.name)!));
        metrics.push(...ours!, ...peer!);
        checks.push(
          atLeast(`${label}: acr-mirror req/s >= 5x Distribution proxy`, ratio(ours![0]!, peer![0]!), 5),
          below(`${label}: acr-mirror p99 < 10 ms`, ours![2]!.median, 10, 'ms'),
        );
      }
      const ceiling = await repeat(sizes.runs, (i) => {
        progress(`(reference) nginx static file, run ${i + 1}/${sizes.runs}`);
        return load(`${stack.nginx.url}/manifest.json`, 'GET');
      });
      metrics.push(...figures('(reference) GET of the same bytes as a static file from nginx', ceiling));
      const bare = await startBareHono(await stack.newDir('bare-hono'), join(stack.nginx.root, 'manifest.json'), image.mediaType);
      try {
        for (const method of ['GET', 'HEAD'] as const) {
          await load(`${bare.url}${path(VARIANTS[0]!)}`, method, 1);
          const runs = await repeat(sizes.runs, (i) => {
            progress(`(reference) bare hono ${method}, run ${i + 1}/${sizes.runs}`);
            return load(`${bare.url}${path(VARIANTS[0]!)}`, method);
          });
          metrics.push(...figures(`(reference) ${method} of the same bytes from memory by a bare @hono/node-server`, runs));
        }
      } finally {
        await bare.stop();
      }
    } finally {
      await Promise.all([mirror.stop(), dist.stop()]);
    }
    return {
      metrics,
      checks,
      notes: [
        `bench/load-generator.ts (closed loop, keep-alive), ${sizes.manifestConnections} connections, ${sizes.manifestSeconds} s per run, Accept with the four manifest types; ` +
          'each server warmed first (1 s per variant). acr-mirror serves a tag from its cache while it is fresh (tag_ttl); ' +
          'Distribution proxy asks the upstream about a tag on every request. The nginx line is the load generator\'s ceiling on this machine; ' +
          'the bare @hono/node-server lines (one route answering the manifest from memory, no logging, metrics or cache) are the floor of the HTTP stack acr-mirror is built on.',
      ],
    };
  },
};

function figures(label: string, runs: readonly LoadResult[]): Metric[] {
  return [
    metric(`${label}: requests/s`, 'req/s', runs.map((r) => r.requestsPerSec)),
    metric(`${label}: p50`, 'ms', runs.map((r) => r.p50Ms)),
    metric(`${label}: p99`, 'ms', runs.map((r) => r.p99Ms)),
  ];
}
