// Layers import only downward, and nothing imports in a circle: read from the import statements of src/.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '../../src');

/** The layer of each top-level directory of src/, bottom (0) to top; files directly in src/ compose (4). */
const LAYERS: Record<string, number> = {
  oci: 0,
  http: 0,
  config: 0,
  util: 0,
  observability: 0,
  access: 0,
  /** ambient type declarations of untyped dependencies (ali-oss) */
  types: 0,
  cache: 1,
  upstream: 1,
  proxy: 2,
  /** replicas sharing the upstream downloads (misses forwarded to a digest's owner) */
  cluster: 2,
  routing: 2,
  registry: 3,
  admin: 3,
  bundle: 3,
  cli: 3,
  '.': 4,
};

type Edge = { from: string; to: string };

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return /\.tsx?$/.test(e.name) ? [relative(SRC, path)] : [];
  });
}

/** Relative imports of a file (static, re-exports and dynamic), as paths under src/ of .ts/.tsx files. */
function importsOf(file: string, known: Set<string>): string[] {
  const text = readFileSync(join(SRC, file), 'utf8');
  const specifiers = [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)['"](\.{1,2}\/[^'"]+)['"]/g)].map((m) => m[1]!);
  return specifiers.map((spec) => {
    const base = relative(SRC, resolve(SRC, dirname(file), spec)).replace(/\.js$/, '');
    const target = [`${base}.ts`, `${base}.tsx`].find((f) => known.has(f));
    if (!target) throw new Error(`${file} imports ${spec}, which is not a source file`);
    return target;
  });
}

function layerOf(file: string): { dir: string; layer: number } {
  const dir = file.includes('/') ? file.slice(0, file.indexOf('/')) : '.';
  const layer = LAYERS[dir];
  if (layer === undefined) throw new Error(`src/${dir}/ has no layer: add it to LAYERS in this test`);
  return { dir, layer };
}

/** The cycles a depth-first walk finds, each written once as `a -> b -> a`. */
function cycles(edges: Edge[]): string[] {
  const next = new Map<string, string[]>();
  for (const e of edges) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const found: string[][] = [];
  const visit = (node: string) => {
    state.set(node, 'open');
    stack.push(node);
    for (const to of next.get(node) ?? []) {
      if (state.get(to) === 'open') found.push([...stack.slice(stack.indexOf(to)), to]);
      else if (!state.has(to)) visit(to);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of next.keys()) if (!state.has(node)) visit(node);
  return [...new Set(found.map((c) => c.join(' -> ')))];
}

const files = sourceFiles(SRC);
const fileSet = new Set(files);
const fileEdges: Edge[] = files.flatMap((from) => importsOf(from, fileSet).map((to) => ({ from, to })));

describe('import layers of src/', () => {
  it('reads the imports it checks', () => {
    expect(files.length).toBeGreaterThan(50);
    expect(fileEdges).toContainEqual({ from: 'app.ts', to: 'routing/routes.ts' });
  });

  it('every top-level directory has a layer', () => {
    for (const f of files) expect(() => layerOf(f)).not.toThrow();
  });

  it('no module imports from a layer above its own', () => {
    const upward = fileEdges.filter((e) => layerOf(e.from).layer < layerOf(e.to).layer);
    expect(upward.map((e) => `${e.from} -> ${e.to}`)).toEqual([]);
  });

  it('no files import each other in a circle', () => {
    expect(cycles(fileEdges)).toEqual([]);
  });

  it('no directories import each other in a circle', () => {
    const dirEdges = fileEdges
      .map((e) => ({ from: layerOf(e.from).dir, to: layerOf(e.to).dir }))
      .filter((e) => e.from !== e.to);
    expect(cycles(dirEdges)).toEqual([]);
  });
});
