import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export const README = readFileSync(resolve(import.meta.dirname, '../../README.md'), 'utf8');

/** The README's fenced code blocks of a language (sh, ini, yaml, toml...) in text (default: all of it), indented ones (in list items) dedented. */
export function readmeBlocks(lang: string, text = README): string[] {
  return [...text.matchAll(new RegExp('^( *)```' + lang + '\\n([\\s\\S]*?)^ *```', 'gm'))].map((m) =>
    m[2]!.replace(new RegExp(`^ {0,${m[1]!.length}}`, 'gm'), ''),
  );
}

/** The README's text from the heading line given (e.g. "### Kubernetes") to the next heading of its level or higher. */
export function readmeSection(heading: string): string {
  const level = heading.indexOf(' ');
  const lines = README.split('\n');
  const start = lines.indexOf(heading);
  if (start < 0) throw new Error(`README has no heading "${heading}"`);
  let fenced = false;
  for (let i = start + 1; i < lines.length; i++) {
    if (/^ *```/.test(lines[i]!)) fenced = !fenced;
    const m = fenced ? null : /^(#+) /.exec(lines[i]!);
    if (m && m[1]!.length <= level) return lines.slice(start, i).join('\n');
  }
  return lines.slice(start).join('\n');
}
