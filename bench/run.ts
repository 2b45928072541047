// `npm run bench [-- --only 2,3] [--quick] [--cpu-prof DIR]`: see bench/README.md.
import { resolve } from 'node:path';
import { cpuSnapshot, othersShare, type CpuSnapshot } from './cpu-accounting.js';
import { parseOptions } from './options.js';
import { describeMachine, renderScenario, writeReport, type BenchReport } from './report.js';
import type { Scenario, ScenarioResult } from './scenario.js';
import { cappedPull } from './scenarios/capped-pull.js';
import { coldPull } from './scenarios/cold-pull.js';
import { fanOut } from './scenarios/fan-out.js';
import { manifests } from './scenarios/manifests.js';
import { memory } from './scenarios/memory.js';
import { ossBackend } from './scenarios/oss-backend.js';
import { scale } from './scenarios/scale.js';
import { warmBlob } from './scenarios/warm-blob.js';
import { startStack } from './stack.js';

const SCENARIOS: readonly Scenario[] = [warmBlob, coldPull, fanOut, manifests, memory, scale, cappedPull, ossBackend];
const REPO = resolve(import.meta.dirname, '..');

const options = parseOptions(process.argv.slice(2));
const started = Date.now();
const progress = (message: string) => process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${message}\n`);

const report: BenchReport = {
  startedAt: new Date(started).toISOString(),
  mode: options.quick ? 'quick' : 'full',
  scenarios: options.only,
  machine: await describeMachine(REPO),
  results: [],
};

const runStart = await cpuSnapshot();
progress('starting the upstream (Distribution + token server + OSS nginx + fault proxy) and the reference nginx');
const stack = await startStack({ cpuProfDir: options.cpuProfDir });
const interrupted = (signal: NodeJS.Signals) => {
  progress(`${signal}: stopping every process started`);
  void stack.stop().finally(() => process.exit(130));
};
process.once('SIGINT', interrupted).once('SIGTERM', interrupted);

try {
  for (const scenario of SCENARIOS.filter((s) => options.only.includes(s.id))) {
    const before = await cpuSnapshot();
    let result: ScenarioResult;
    try {
      const outcome = await scenario.run({
        stack,
        sizes: options.sizes,
        progress: (m) => progress(`${scenario.id}. ${m}`),
      });
      result = { id: scenario.id, title: scenario.title, ...(await measured(before)), ...outcome };
    } catch (err) {
      const error = err instanceof Error ? (err.stack ?? err.message) : String(err);
      progress(`${scenario.id}. failed: ${error}`);
      result = { id: scenario.id, title: scenario.title, ...(await measured(before)), metrics: [], checks: [], notes: [], error };
    }
    report.results.push(result);
    process.stdout.write(`\n${renderScenario(result).join('\n')}\n`);
  }
} finally {
  await stack.stop();
}
report.othersCpu = othersShare(runStart, await cpuSnapshot());

async function measured(before: CpuSnapshot): Promise<Pick<ScenarioResult, 'seconds' | 'othersCpu'>> {
  const after = await cpuSnapshot();
  return { seconds: (after.at - before.at) / 1000, othersCpu: othersShare(before, after) };
}

const written = await writeReport(report, REPO, SCENARIOS.length);
const checks = report.results.flatMap((r) => r.checks.filter((c) => !c.target.startsWith('(reference)')));
process.stdout.write(
  `\n${checks.filter((c) => c.pass).length} of ${checks.length} targets met; ` +
    `${report.results.filter((r) => r.error).length} scenario(s) failed; ${((Date.now() - started) / 1000).toFixed(0)} s.\n` +
    `Written: ${written.map((w) => w.slice(REPO.length + 1)).join(', ')}\n`,
);
process.exitCode = report.results.some((r) => r.error) ? 1 : 0;
