// No container engine can pull base images here (no registry is reachable), so the Dockerfile is checked in two
// ways: its structure (multi-stage, non-root, volume, healthcheck, a .dockerignore that sends only what it copies)
// and its runtime recipe run outside a container: the README's `docker run` (the committed config.toml mounted over
// the image's) with the image's ENV, its ENTRYPOINT + CMD, then its HEALTHCHECK command.
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from './harness/ports.js';
import { eventually } from '../support/eventually.js';
import { DOCKERFILE, find, imageEnv, ROOT, runtime, stages } from '../support/dockerfile.js';
import { readmeBlocks } from '../support/readme.js';

/** The sources of the Dockerfile's COPY instructions from the build context. */
const copiedFromContext = DOCKERFILE.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from=')).flatMap((c) => c.args.split(/\s+/).slice(0, -1));

/** The README's `docker run` example: its volume mounts (host -> container) and published ports. */
function readmeDockerRun(): { mounts: Map<string, string>; ports: string[] } {
  const command = readmeBlocks('sh').map((b) => b.replace(/\\\n\s*/g, ' ')).flatMap((b) => b.split('\n')).find((l) => l.startsWith('docker run '));
  expect(command, 'a docker run example in the README').toBeDefined();
  const words = command!.split(/\s+/);
  const after = (flag: string) => words.flatMap((w, i) => (w === flag ? [words[i + 1]!] : []));
  const mounts = new Map(after('-v').map((v) => v.split(':')).map(([from, to]) => [to!, from!]));
  return { mounts, ports: after('-p') };
}

describe('Dockerfile', () => {
  it('builds in one stage and runs a small, non-root image in another', () => {
    expect(stages.length).toBe(2);
    expect(find(stages[0]!, 'RUN').map((r) => r.args).join(' ')).toMatch(/python3 make g\+\+/);
    expect(find(stages[0]!, 'RUN').map((r) => r.args).join(' ')).toMatch(/npm ci .*&& npm run build|npm run build/);
    expect(find(runtime, 'COPY').every((c) => c.args.startsWith('--from=build') || /^(package\.json|config\.toml) /.test(c.args))).toBe(true);
    expect(find(runtime, 'USER').at(-1)?.args).toBe('node');
    expect(find(runtime, 'VOLUME').map((v) => v.args)).toEqual(['/data']);
    expect(find(runtime, 'EXPOSE').map((v) => v.args)).toEqual(['5000']);
    expect(DOCKERFILE.some((i) => i.op === 'ADD')).toBe(false);
    for (const src of copiedFromContext) expect(existsSync(join(ROOT, src)), src).toBe(true);
  });

  it('has a .dockerignore that sends the build context only what the Dockerfile copies', () => {
    const lines = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    expect(lines[0]).toBe('*');
    expect(lines.slice(1).every((l) => l.startsWith('!'))).toBe(true);
    expect(new Set(lines.slice(1).map((l) => l.slice(1)))).toEqual(new Set(copiedFromContext));
  });

  it("keeps the image's listen address, allow-list and /data volume whatever config the README mounts", () => {
    const { mounts, ports } = readmeDockerRun();
    expect(mounts.get(imageEnv.ACR_MIRROR_CONFIG!)).toBe('$PWD/config.toml');
    expect(find(runtime, 'COPY').some((c) => c.args === `config.toml ${imageEnv.ACR_MIRROR_CONFIG}`)).toBe(true);
    expect(imageEnv.ACR_MIRROR_STORAGE_DIR).toBe('/data');
    expect(mounts.has('/data')).toBe(true);
    expect(find(runtime, 'VOLUME').map((v) => v.args)).toEqual(['/data']);
    const port = imageEnv.ACR_MIRROR_LISTEN!.split(':').at(-1);
    expect(imageEnv.ACR_MIRROR_LISTEN).toBe(`0.0.0.0:${port}`);
    expect(find(runtime, 'EXPOSE').map((v) => v.args)).toEqual([port]);
    expect(ports.map((p) => p.split(':').at(-1))).toEqual([port]);
    expect(imageEnv.ACR_MIRROR_ALLOW!.split(',')).toEqual(expect.arrayContaining(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '127.0.0.0/8']));
  });

  it("runs the README's docker run outside a container: cache in the volume, healthcheck on the configured port", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'acr-mirror-image-'));
    const port = await freePort();
    try {
      // outside a container: /etc/acr-mirror and /data are temp directories, and the mirror listens on a free
      // loopback port (not the image's 5000, so a healthcheck that does not follow the configuration fails)
      expect(port).not.toBe(5000);
      const config = join(dir, imageEnv.ACR_MIRROR_CONFIG!);
      mkdirSync(dirname(config), { recursive: true });
      copyFileSync(join(ROOT, readmeDockerRun().mounts.get(imageEnv.ACR_MIRROR_CONFIG!)!.replace('$PWD/', '')), config);
      const data = join(dir, imageEnv.ACR_MIRROR_STORAGE_DIR!);
      const env = { ...imageEnv, PATH: process.env.PATH, ACR_MIRROR_CONFIG: config, ACR_MIRROR_STORAGE_DIR: data, ACR_MIRROR_LISTEN: `127.0.0.1:${port}` };
      const inApp = (argv: string[]) => argv.map((a) => a.replace('/app/', `${ROOT}/`)).map((a) => (a === 'node' ? process.execPath : a));
      const entrypoint = JSON.parse(find(runtime, 'ENTRYPOINT')[0]!.args) as string[];
      const cmd = JSON.parse(find(runtime, 'CMD')[0]!.args) as string[];
      expect(entrypoint).toEqual(['node', '/app/dist/main.js']);
      const [program, ...args] = inApp([...entrypoint, ...cmd]);
      const healthcheck = inApp(JSON.parse(find(runtime, 'HEALTHCHECK')[0]!.args.replace(/^.*?CMD\s+/, '')) as string[]);
      const probe = () => spawnSync(healthcheck[0]!, healthcheck.slice(1), { env, encoding: 'utf8' });

      const child = spawn(program!, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      try {
        await eventually(() => expect(probe().status, out).toBe(0), { intervalMs: 100, message: 'HEALTHCHECK never passed' });
        // the log line travels through a pipe: it may arrive a moment after the port answers
        await eventually(() => expect(out).toContain('"msg":"listening"'), { timeoutMs: 1000 });
        const listening = JSON.parse(out.split('\n').find((l) => l.includes('"msg":"listening"'))!) as { url: string; config: string; dataDir: string; allow: string[] };
        expect(listening.url).toBe(`http://127.0.0.1:${port}`);
        expect(listening.config).toBe(`${config} with ACR_MIRROR_LISTEN, ACR_MIRROR_STORAGE_DIR, ACR_MIRROR_ALLOW from the environment`);
        expect(listening.allow).toEqual(imageEnv.ACR_MIRROR_ALLOW!.split(','));
        expect(existsSync(join(data, 'mirror.db'))).toBe(true);
        // the committed config.toml says dir = "data": relative to the mounted file, the cache would be here
        expect(existsSync(join(dirname(config), 'data'))).toBe(false);
      } finally {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
      const down = probe();
      expect(down.status).toBe(1);
      expect(down.stderr).toContain(`http://127.0.0.1:${port}/healthz`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
