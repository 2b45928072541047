// Start-up problems the operator can fix end in one line naming the path or address and the cause, and exit
// status 2 (no stack trace); check-config finds an unusable data directory without creating anything.
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const MAIN = resolve(import.meta.dirname, '../../dist/main.js');

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'acr-mirror-startup-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * Runs the built CLI with a config whose storage.dir is `dataDir`. As root, the permission cases run it without the
 * capabilities that let root ignore file modes (util-linux setpriv), not as another user: the checkout may sit in a
 * directory only root can enter (CI clones into `mktemp -d`, mode 0700).
 */
async function run(dataDir: string, args: string[], opts: { unprivileged?: boolean } = {}) {
  const config = join(dir, 'config.toml');
  await writeFile(config, `[storage]\ndir = "${dataDir}"\n\n[upstreams.acr]\nurl = "https://registry.example"\n`);
  const bounded = opts.unprivileged && process.getuid?.() === 0;
  const command = [process.execPath, MAIN, '--config', config, ...args];
  const argv = bounded ? ['setpriv', '--bounding-set=-dac_override,-dac_read_search', '--', ...command] : command;
  const options: SpawnSyncOptions = { encoding: 'utf8', timeout: 15_000, env: { PATH: process.env.PATH } };
  const r = spawnSync(argv[0]!, argv.slice(1), options);
  return { status: r.status, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** A directory no one may write to (0555; root too, once it runs without CAP_DAC_OVERRIDE). */
async function readOnlyDir(): Promise<string> {
  const path = join(dir, 'ro');
  await mkdir(path);
  await chmod(path, 0o555);
  return path;
}

describe('serve', () => {
  let occupied: Server | undefined;
  afterEach(() => new Promise<void>((done) => (occupied ? occupied.close(() => done()) : done())));

  it('a listen address in use: one line naming it and the cause, exit 2', async () => {
    occupied = createServer();
    await new Promise<void>((done) => occupied!.listen(0, '127.0.0.1', done));
    const port = (occupied.address() as { port: number }).port;
    const r = await run(join(dir, 'data'), ['serve', '--listen', `127.0.0.1:${port}`]);
    expect(r.stderr).toBe(`acr-mirror: cannot listen on 127.0.0.1:${port}: address already in use (EADDRINUSE): another process listens there\n`);
    expect(r.status).toBe(2);
  });

  it.each([
    ['cannot be created', (ro: string) => join(ro, 'data'), (ro: string) => `data directory ${ro}/data cannot be created: ${ro} is not writable: permission denied (EACCES)`],
    ['is not writable', (ro: string) => ro, (ro: string) => `data directory ${ro} is not writable: permission denied (EACCES)`],
  ])('a data directory that %s: one line naming it and the cause, exit 2', async (_case, dataDir, message) => {
    const ro = await readOnlyDir();
    const r = await run(dataDir(ro), ['serve', '--listen', '127.0.0.1:0'], { unprivileged: true });
    expect(r.stderr).toBe(`acr-mirror: ${message(ro)}\n`);
    expect(r.status).toBe(2);
  });

  it('a data directory below a file: one line naming the file, exit 2', async () => {
    await writeFile(join(dir, 'file'), 'not a directory');
    const r = await run(join(dir, 'file', 'data'), ['serve', '--listen', '127.0.0.1:0']);
    expect(r.stderr).toBe(`acr-mirror: data directory ${dir}/file/data cannot be created: ${dir}/file is not a directory\n`);
    expect(r.status).toBe(2);
  });
});

describe('check-config', () => {
  it('fails with the reason when the data directory cannot be written', async () => {
    const ro = await readOnlyDir();
    const r = await run(join(ro, 'data'), ['check-config'], { unprivileged: true });
    expect(r.stderr).toBe(`acr-mirror: data directory ${ro}/data cannot be created: ${ro} is not writable: permission denied (EACCES)\n`);
    expect(r.stdout).toBe('');
    expect(r.status).toBe(2);
  });

  it('passes a data directory that can be created, and creates nothing', async () => {
    const r = await run(join(dir, 'new', 'data'), ['check-config']);
    expect(r.stdout).toMatch(/^configuration OK/);
    expect(r.status).toBe(0);
    expect(existsSync(join(dir, 'new'))).toBe(false);
  });
});
