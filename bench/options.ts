import { parseArgs } from 'node:util';
import { GiB, MiB } from './stats.js';

/** Sizes and counts of one benchmark run; --quick shrinks them for a smoke run of every code path. */
export interface Sizes {
  /** Runs per measurement (median, min, max are over these). */
  runs: number;
  /** Scenarios 1 and 5. */
  blobBytes: number;
  /** Scenario 1: concurrent clients per measurement. */
  blobClients: readonly number[];
  /**
   * Scenario 1: runs with one client. One download's speed swings from about 1.2 to 4 GiB/s from one run to the
   * next on a 2-core machine, whichever server sends it: more runs keep the median steady.
   */
  singleClientRuns: number;
  /** Scenario 2: layer payloads of the cold-pull image. */
  pullLayers: readonly number[];
  /** Scenario 3. */
  fanoutLayers: readonly number[];
  fanoutClients: number;
  /** Scenario 4. */
  manifestConnections: number;
  manifestSeconds: number;
  /** Scenario 5 (each run moves 2 x clients x blobBytes). */
  memoryClients: number;
  memoryRuns: number;
  /** Scenario 6. */
  scaleBlobs: number;
  scaleTags: number;
  scaleLookups: number;
  scaleStarts: number;
}

const FULL: Sizes = {
  runs: 3,
  blobBytes: GiB,
  blobClients: [1, 16],
  singleClientRuns: 7,
  pullLayers: Array(5).fill(40 * MiB),
  fanoutLayers: Array(5).fill(10 * MiB),
  fanoutClients: 50,
  manifestConnections: 64,
  manifestSeconds: 3,
  memoryClients: 20,
  memoryRuns: 2,
  scaleBlobs: 100_000,
  scaleTags: 10_000,
  scaleLookups: 1_000,
  scaleStarts: 5,
};

const QUICK: Sizes = {
  ...FULL,
  runs: 2,
  singleClientRuns: 2,
  blobBytes: 64 * MiB,
  pullLayers: Array(5).fill(4 * MiB),
  fanoutLayers: Array(5).fill(MiB),
  manifestSeconds: 1,
  scaleBlobs: 10_000,
  scaleTags: 1_000,
  scaleLookups: 300,
  scaleStarts: 3,
};

export const SCENARIO_IDS = [1, 2, 3, 4, 5, 6, 7, 8] as const;

export interface Options {
  only: number[];
  quick: boolean;
  /** Run every mirror with --cpu-prof into this directory. */
  cpuProfDir: string | null;
  sizes: Sizes;
}

export function parseOptions(argv: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      only: { type: 'string' },
      quick: { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write('usage: npm run bench -- [--only 1,4] [--quick] [--cpu-prof DIR]\n');
    process.exit(0);
  }
  const only = values.only === undefined ? [...SCENARIO_IDS] : values.only.split(',').map((s) => Number(s.trim()));
  for (const id of only) {
    if (!(SCENARIO_IDS as readonly number[]).includes(id)) throw new Error(`--only: no scenario ${id} (have ${SCENARIO_IDS.join(', ')})`);
  }
  return { only, quick: values.quick, cpuProfDir: values['cpu-prof'] ?? null, sizes: values.quick ? QUICK : FULL };
}
