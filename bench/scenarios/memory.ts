import { rm } from 'node:fs/promises';
import { downloadConcurrently } from '../clients.js';
import { repeat, type Scenario } from '../scenario.js';
import { atMost, fmt, metric, MiB } from '../stats.js';

const LIMIT_MIB = 200;

/** Scenario 5: the mirror's peak RSS (VmHWM) while N clients pull one big blob, cold (joining one fill) and warm. */
export const memory: Scenario = {
  id: 5,
  title: 'Memory: peak RSS',
  async run({ stack, sizes, progress }) {
    const blob = await stack.fixtures.blob(sizes.blobBytes);
    const n = sizes.memoryClients;
    const url = (base: string) => `${base}/v2/${blob.repo}/blobs/${blob.digest}`;
    const timeoutMs = 120_000 + ((n * blob.size) / (20 * MiB)) * 1000;
    const idle: number[] = [];
    const cold: number[] = [];
    const warm: number[] = [];
    await repeat(sizes.memoryRuns, async (i) => {
      const dataDir = await stack.newDir('memory');
      try {
        for (const phase of ['cold', 'warm'] as const) {
          progress(`${n} clients, ${phase}, run ${i + 1}/${sizes.memoryRuns}`);
          // A fresh process for each phase: VmHWM is the peak since start.
          const mirror = await stack.startMirror(dataDir);
          try {
            if (phase === 'cold') idle.push((await mirror.memory()).peakRss / MiB);
            await downloadConcurrently(url(mirror.url), n, blob.size, timeoutMs);
            (phase === 'cold' ? cold : warm).push((await mirror.memory()).peakRss / MiB);
          } finally {
            await mirror.stop();
          }
        }
      } finally {
        await rm(dataDir, { recursive: true, force: true });
      }
    });
    const c = metric(`peak RSS, ${n} clients, cold`, 'MiB', cold);
    const w = metric(`peak RSS, ${n} clients, warm`, 'MiB', warm);
    return {
      metrics: [metric('(reference) peak RSS after start-up, idle', 'MiB', idle), c, w],
      checks: [
        atMost(`cold: peak RSS <= ${LIMIT_MIB} MiB (worst run)`, c.max, LIMIT_MIB, ' MiB'),
        atMost(`warm: peak RSS <= ${LIMIT_MIB} MiB (worst run)`, w.max, LIMIT_MIB, ' MiB'),
      ],
      notes: [
        `${n} concurrent curl clients GET one ${fmt(blob.size / MiB)} MiB blob: cold, all joining the one upstream fill of an ` +
          'empty cache; then warm, from a restarted mirror on the filled cache. Peak RSS is VmHWM of the mirror process.',
      ],
    };
  },
};
