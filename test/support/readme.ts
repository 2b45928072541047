import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export const README = readFileSync(resolve(import.meta.dirname, '../../README.md'), 'utf8');

/** The README's fenced code blocks of a language (sh, ini, yaml, toml...), indented ones (in list items) dedented. */
export function readmeBlocks(lang: string): string[] {
  return [...README.matchAll(new RegExp('^( *)```' + lang + '\\n([\\s\\S]*?)^ *```', 'gm'))].map((m) =>
    m[2]!.replace(new RegExp(`^ {0,${m[1]!.length}}`, 'gm'), ''),
  );
}
