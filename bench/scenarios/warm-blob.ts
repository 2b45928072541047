import { link, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { downloadConcurrently } from '../clients.js';
import { repeat, type Scenario } from '../scenario.js';
import { atLeast, fmt, metric, MiB, ratio, type Check, type Metric } from '../stats.js';

/** Scenario 1: the same warm blob from nginx, acr-mirror and Distribution proxy, by 1 and by N curl clients. */
export const warmBlob: Scenario = {
  id: 1,
  title: 'Warm blob GET throughput',
  async run({ stack, sizes, progress }) {
    const blob = await stack.fixtures.blob(sizes.blobBytes);
    const nginxFile = join(stack.nginx.root, 'blob');
    await rm(nginxFile, { force: true });
    await link(blob.path, nginxFile);
    const [mirror, dist] = await Promise.all([stack.startMirror(), stack.startDistributionProxy()]);
    const blobPath = `/v2/${blob.repo}/blobs/${blob.digest}`;
    const targets = [
      { name: 'nginx', url: `${stack.nginx.url}/blob` },
      { name: 'acr-mirror', url: `${mirror.url}${blobPath}` },
      { name: 'Distribution proxy', url: `${dist.url}${blobPath}` },
    ] as const;
    const timeoutFor = (clients: number) => 60_000 + (clients * blob.size) / (20 * MiB) * 1000;
    const metrics: Metric[] = [];
    const checks: Check[] = [];
    try {
      progress(`filling acr-mirror and Distribution proxy with the ${fmt(blob.size / MiB)} MiB blob`);
      for (const t of targets) await downloadConcurrently(t.url, 1, blob.size, timeoutFor(1));

      for (const clients of sizes.blobClients) {
        const speeds = new Map<string, number[]>(targets.map((t) => [t.name, []]));
        const runs = clients === 1 ? sizes.singleClientRuns : sizes.runs;
        await repeat(runs, async (i) => {
          for (const t of targets) {
            progress(`${clients} client(s), ${t.name}, run ${i + 1}/${runs}`);
            const d = await downloadConcurrently(t.url, clients, blob.size, timeoutFor(clients));
            speeds.get(t.name)!.push(d.bytes / MiB / (d.wallMs / 1000));
          }
        });
        const [nginx, ours, peer] = targets.map((t) => metric(`${t.name}, ${clients} client(s)`, 'MiB/s', speeds.get(t.name)!));
        metrics.push(nginx!, ours!, peer!);
        checks.push(
          atLeast(`${clients} client(s): acr-mirror >= 0.9x nginx`, ratio(ours!, nginx!), 0.9),
          atLeast(`${clients} client(s): acr-mirror >= 1.2x Distribution proxy`, ratio(ours!, peer!), 1.2),
        );
      }
    } finally {
      await Promise.all([mirror.stop(), dist.stop()]);
    }
    return {
      metrics,
      checks,
      notes: [
        `A ${fmt(blob.size / MiB)} MiB blob, already cached by each server, fetched by concurrent \`curl -o /dev/null\` processes; ` +
          'throughput is all bytes received divided by the wall time from the first request to the last byte.',
      ],
    };
  },
};
