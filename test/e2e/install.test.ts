// acr-mirror on PATH: the build leaves dist/main.js executable with its shebang, so the link that `npm install -g .`
// or `npm link` makes (bin/acr-mirror -> dist/main.js) runs as a command.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readmeBlocks } from '../support/readme.js';

const ROOT = resolve(import.meta.dirname, '../..');

const MAIN = join(ROOT, 'dist/main.js');

describe('acr-mirror on PATH', () => {
  it('the package names dist/main.js as the acr-mirror command, and the README installs it', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    expect(pkg.bin).toEqual({ 'acr-mirror': 'dist/main.js' });
    expect(readmeBlocks('sh').some((b) => /^sudo npm install -g \.\s/m.test(b) && /^sudo npm ci && sudo npm run build/m.test(b))).toBe(true);
  });

  it('the built dist/main.js starts with a shebang and is executable', () => {
    expect(readFileSync(MAIN, 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node');
    expect(statSync(MAIN).mode & 0o111).toBe(0o111);
  });

  it('runs as acr-mirror from PATH through a link like the one npm makes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'acr-mirror-path-'));
    try {
      mkdirSync(join(dir, 'bin'));
      symlinkSync(MAIN, join(dir, 'bin', 'acr-mirror'));
      const r = spawnSync('acr-mirror', ['--help'], { env: { PATH: `${join(dir, 'bin')}:${process.env.PATH}` }, encoding: 'utf8' });
      expect(r.error).toBeUndefined();
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^Usage: acr-mirror /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
