import { availableParallelism, cpus, release, totalmem } from 'node:os';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../test/e2e/harness/proc.js';
import type { ScenarioResult } from './scenario.js';
import { fmt, GiB } from './stats.js';

export interface Machine {
  nproc: number;
  memoryGiB: number;
  cpuModel: string;
  kernel: string;
  node: string;
  /** First line of `<tool> --version` for the other programs in the benchmark. */
  tools: Record<string, string>;
  /** `git describe --always --dirty` of the tree benchmarked. */
  commit: string;
}

export interface BenchReport {
  startedAt: string;
  mode: 'full' | 'quick';
  scenarios: number[];
  machine: Machine;
  results: ScenarioResult[];
  /** Share of the machine's CPU used by processes outside the benchmark during the whole run (0..1). */
  othersCpu?: number;
}

export async function describeMachine(repoDir: string): Promise<Machine> {
  const firstLine = async (cmd: string, args: string[]) => {
    const r = await run(cmd, args, { timeoutMs: 10_000 }).catch(() => null);
    return (r?.stdout || r?.stderr || '').split('\n')[0]!.replace(/ \(.*$/, '').trim() || 'unknown';
  };
  const [registry, nginx, skopeo, curl, commit] = await Promise.all([
    firstLine('docker-registry', ['--version']),
    firstLine('nginx', ['-v']),
    firstLine('skopeo', ['--version']),
    firstLine('curl', ['--version']),
    firstLine('git', ['-C', repoDir, 'describe', '--always', '--dirty']),
  ]);
  return {
    nproc: availableParallelism(),
    memoryGiB: Math.round((totalmem() / GiB) * 10) / 10,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    kernel: release(),
    node: process.version,
    tools: { 'docker-registry': registry, nginx, skopeo, curl },
    commit,
  };
}

export function renderMarkdown(report: BenchReport): string {
  const m = report.machine;
  const lines = [
    `## acr-mirror benchmarks, ${report.startedAt} (${report.mode}${report.mode === 'quick' ? ': smaller sizes, not comparable to the targets' : ''})`,
    '',
    `Machine: ${m.nproc} cores (${m.cpuModel}), ${m.memoryGiB} GiB, Linux ${m.kernel}, Node ${m.node}; ` +
      `${Object.values(m.tools).join('; ')}. Tree: \`${m.commit}\`. Everything on 127.0.0.1. ` +
      `Other processes used ${pct(report.othersCpu)} of the CPUs during the run${(report.othersCpu ?? 0) > 0.05 ? ' (**figures skewed**)' : ''}.`,
    '',
  ];
  for (const r of report.results) lines.push(...renderScenario(r), '');
  return lines.join('\n');
}

const pct = (share: number | undefined): string => (share === undefined ? '?' : `${Math.round(share * 100)} %`);

export function renderScenario(r: ScenarioResult): string[] {
  const busy = `other processes used ${pct(r.othersCpu)} of the CPUs meanwhile`;
  const lines = [`### ${r.id}. ${r.title} (${fmt(r.seconds)} s; ${r.othersCpu > 0.05 ? `**${busy}: figures skewed**` : busy})`, ''];
  if (r.error) lines.push(`**Could not finish:** ${r.error.split('\n')[0]}`, '');
  if (r.metrics.length) {
    lines.push('| measurement | median | min | max | unit | runs |', '| --- | ---: | ---: | ---: | --- | ---: |');
    for (const x of r.metrics) lines.push(`| ${x.name} | ${fmt(x.median)} | ${fmt(x.min)} | ${fmt(x.max)} | ${x.unit} | ${x.runs.length} |`);
    lines.push('');
  }
  if (r.checks.length) {
    lines.push('| target | measured | |', '| --- | ---: | --- |');
    for (const c of r.checks) lines.push(`| ${c.target} | ${c.measured} | ${c.target.startsWith('(reference)') ? '' : c.pass ? 'PASS' : '**MISS**'} |`);
    lines.push('');
  }
  for (const n of r.notes) lines.push(`${n}`);
  return lines;
}

const README_START = '<!-- bench:latest:start -->';
const README_END = '<!-- bench:latest:end -->';

/** bench/results/<timestamp>.{json,md} and latest.md; a full run of every scenario also replaces the README's table. */
export async function writeReport(report: BenchReport, repoDir: string, scenarioCount: number): Promise<string[]> {
  const dir = join(repoDir, 'bench', 'results');
  await mkdir(dir, { recursive: true });
  const stamp = report.startedAt.replace(/[:.]/g, '-');
  const markdown = renderMarkdown(report);
  const written = [join(dir, `${stamp}.json`), join(dir, `${stamp}.md`), join(dir, 'latest.md')];
  await writeFile(written[0]!, `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(written[1]!, markdown);
  await writeFile(written[2]!, markdown);
  if (report.mode === 'full' && report.scenarios.length === scenarioCount && report.results.every((r) => !r.error)) {
    const readme = join(repoDir, 'README.md');
    const text = await readFile(readme, 'utf8');
    const start = text.indexOf(README_START);
    const end = text.indexOf(README_END);
    if (start >= 0 && end > start) {
      const body = markdown.replace(/^## /m, '### ').replace(/^### (\d)/gm, '#### $1');
      await writeFile(readme, `${text.slice(0, start + README_START.length)}\n${body}\n${text.slice(end)}`);
      written.push(readme);
    }
  }
  return written;
}
