// No container engine can pull base images here (no registry is reachable), so the Dockerfile is checked in two
// ways: its structure (multi-stage, non-root, volume, healthcheck...) and its runtime recipe run outside a
// container: the config edits of its RUN line, then its ENTRYPOINT + CMD, then its HEALTHCHECK command.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from './harness/ports.js';
import { eventually } from '../support/eventually.js';

const ROOT = resolve(import.meta.dirname, '../..');
const DOCKERFILE = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');

interface Instruction {
  op: string;
  args: string;
}

/** Dockerfile instructions with line continuations joined and comments dropped. */
function instructions(text: string): Instruction[] {
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

const all = instructions(DOCKERFILE);
const stages = all.reduce<Instruction[][]>((acc, i) => (i.op === 'FROM' ? [...acc, [i]] : (acc.at(-1)!.push(i), acc)), []);
const runtime = stages.at(-1)!;
const find = (stage: Instruction[], op: string) => stage.filter((i) => i.op === op);

describe('Dockerfile', () => {
  it('builds in one stage and runs a small, non-root image in another', () => {
    expect(stages.length).toBe(2);
    expect(find(stages[0]!, 'RUN').map((r) => r.args).join(' ')).toMatch(/python3 make g\+\+/);
    expect(find(stages[0]!, 'RUN').map((r) => r.args).join(' ')).toMatch(/npm ci .*&& npm run build|npm run build/);
    expect(find(runtime, 'COPY').every((c) => c.args.startsWith('--from=build') || /^(package\.json|config\.toml) /.test(c.args))).toBe(true);
    expect(find(runtime, 'USER').at(-1)?.args).toBe('node');
    expect(find(runtime, 'VOLUME').map((v) => v.args)).toEqual(['/data']);
    expect(find(runtime, 'EXPOSE').map((v) => v.args)).toEqual(['5000']);
    expect(find(runtime, 'HEALTHCHECK')[0]?.args).toContain('/healthz');
    expect(all.some((i) => i.op === 'ADD')).toBe(false);
    for (const copy of find(stages[0]!, 'COPY')) {
      for (const src of copy.args.split(/\s+/).slice(0, -1)) expect(existsSync(join(ROOT, src)), src).toBe(true);
    }
  });

  it("runs the image's entrypoint with its config edits and passes its own healthcheck", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'acr-mirror-image-'));
    const port = await freePort();
    try {
      // the RUN line's sed expressions, applied to the committed config.toml as the image build does
      const sedRun = find(runtime, 'RUN').find((r) => r.args.startsWith('sed '))!.args;
      const expressions = /sed -i '([^']+)'/.exec(sedRun)![1]!;
      const edited = spawnSync('sed', [expressions, join(ROOT, 'config.toml')], { encoding: 'utf8' });
      expect(edited.status).toBe(0);
      expect(edited.stdout).toMatch(/^dir = "\/data"$/m);
      expect(edited.stdout).toMatch(/^listen = "0\.0\.0\.0:5000"$/m);
      expect(edited.stdout).toMatch(/^allow = \["10\.0\.0\.0\/8", "172\.16\.0\.0\/12", "192\.168\.0\.0\/16"/m);
      // outside a container: /data -> a temp dir, port 5000 -> a free loopback port
      const config = edited.stdout
        .replace(/^dir = "\/data"$/m, `dir = "${join(dir, 'data')}"`)
        .replace(/^listen = "0\.0\.0\.0:5000"$/m, `listen = "127.0.0.1:${port}"`);
      await writeFile(join(dir, 'config.toml'), config);

      const env = Object.fromEntries(find(runtime, 'ENV').flatMap((e) => [...e.args.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!])));
      expect(env.ACR_MIRROR_CONFIG).toBe('/etc/acr-mirror/config.toml');
      const entrypoint = JSON.parse(find(runtime, 'ENTRYPOINT')[0]!.args) as string[];
      const cmd = JSON.parse(find(runtime, 'CMD')[0]!.args) as string[];
      expect(entrypoint).toEqual(['node', '/app/dist/main.js']);
      const argv = [...entrypoint, ...cmd].map((a) => a.replace('/app/', `${ROOT}/`));
      const child = spawn(argv[0] === 'node' ? process.execPath : argv[0]!, argv.slice(1), {
        env: { PATH: process.env.PATH, NODE_ENV: env.NODE_ENV, ACR_MIRROR_CONFIG: join(dir, 'config.toml') },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      try {
        const healthcheck = find(runtime, 'HEALTHCHECK')[0]!.args.replace(/^.*CMD\s+/, '').replace('127.0.0.1:5000', `127.0.0.1:${port}`);
        const probe = healthcheck.replace(/^node /, `"${process.execPath}" `);
        await eventually(() => expect(spawnSync('sh', ['-c', probe]).status, out).toBe(0), { intervalMs: 100, message: 'HEALTHCHECK never passed' });
        // the log line travels through a pipe: it may arrive a moment after the port answers
        await eventually(() => expect(out).toContain('"msg":"listening"'), { timeoutMs: 1000 });
        expect(out).toContain(`"url":"http://127.0.0.1:${port}"`);
        expect(existsSync(join(dir, 'data', 'mirror.db'))).toBe(true);
      } finally {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
