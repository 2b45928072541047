// Top self-time functions of V8 CPU profiles (from `npm run bench -- --cpu-prof DIR`):
//   node --import tsx bench/cpu-profile.ts DIR/*.cpuprofile [--top 25]
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time in ms per function (name + file:line) and per place (package, node internals, or project file). */
function selfTimes(profile: Profile): { functions: Map<string, number>; places: Map<string, number>; totalMs: number } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const functions = new Map<string, number>();
  const places = new Map<string, number>();
  let totalMs = 0;
  profile.samples.forEach((id, i) => {
    const ms = (profile.timeDeltas[i] ?? 0) / 1000;
    const frame = byId.get(id)?.callFrame;
    if (!frame) return;
    totalMs += ms;
    const file = frame.url.replace(/^file:\/\//, '');
    const name = `${frame.functionName || '(anonymous)'} ${shortPath(file)}${file ? `:${frame.lineNumber + 1}` : ''}`;
    functions.set(name, (functions.get(name) ?? 0) + ms);
    const where = place(file, frame.functionName);
    places.set(where, (places.get(where) ?? 0) + ms);
  });
  return { functions, places, totalMs };
}

function shortPath(file: string): string {
  const nm = file.lastIndexOf('/node_modules/');
  if (nm >= 0) return file.slice(nm + '/node_modules/'.length);
  const dist = file.indexOf('/dist/');
  return dist >= 0 ? file.slice(dist + 1) : file;
}

function place(file: string, fn: string): string {
  if (!file) return fn.startsWith('(') ? fn : '(native)';
  if (file.startsWith('node:')) return 'node internals';
  const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file);
  if (m) return m[1]!;
  const dist = file.indexOf('/dist/');
  return dist >= 0 ? file.slice(dist + 1).replace(/\/[^/]+$/, '/') : file;
}

function table(title: string, rows: Map<string, number>, totalMs: number, top: number): string {
  const sorted = [...rows].sort((a, b) => b[1] - a[1]).slice(0, top);
  return [`${title}`, ...sorted.map(([k, ms]) => `${((ms / totalMs) * 100).toFixed(1).padStart(5)} %  ${ms.toFixed(0).padStart(7)} ms  ${k}`)].join('\n');
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' } } });
for (const path of positionals) {
  const { functions, places, totalMs } = selfTimes(JSON.parse(await readFile(path, 'utf8')) as Profile);
  process.stdout.write(
    `${path}: ${(totalMs / 1000).toFixed(1)} s sampled\n${table('by place:', places, totalMs, 12)}\n${table('by function (self time):', functions, totalMs, Number(values.top))}\n\n`,
  );
}
