// The repository's Dockerfile read as instructions, for the tests that check the image's recipe without a container
// engine (no registry is reachable here to pull base images).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../..');

export interface Instruction {
  op: string;
  args: string;
}

/** Dockerfile instructions with line continuations joined and comments dropped. */
export function instructions(text: string): Instruction[] {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const [op, ...rest] = l.split(/\s+/);
      return { op: op!.toUpperCase(), args: rest.join(' ') };
    });
}

export const DOCKERFILE = instructions(readFileSync(resolve(ROOT, 'Dockerfile'), 'utf8'));
/** The build stages, each starting with its FROM. */
export const stages = DOCKERFILE.reduce<Instruction[][]>((acc, i) => (i.op === 'FROM' ? [...acc, [i]] : (acc.at(-1)!.push(i), acc)), []);
/** The stage the image runs. */
export const runtime = stages.at(-1)!;
export const find = (stage: Instruction[], op: string) => stage.filter((i) => i.op === op);
/** The environment the image's ENV instructions set. */
export const imageEnv: Record<string, string> = Object.fromEntries(
  find(runtime, 'ENV').flatMap((e) => [...e.args.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!])),
);
