// warm, export, import and healthcheck without --url reach the mirror where its configuration says it listens
// (--config, or $ACR_MIRROR_CONFIG), without needing the upstream's secrets in the operator's shell.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/observability/logger.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { freePort } from './harness/ports.js';
import { run } from './harness/proc.js';

const MAIN = resolve(import.meta.dirname, '../../dist/main.js');
const TOKEN = 'cli-config-admin-token-5f0c9e2a71';

describe('commands that talk to a running mirror find it from the configuration', () => {
  let dir: string;
  let configPath: string;
  let server: RunningServer;
  let port: number;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'acr-cli-config-'));
    port = await freePort();
    configPath = join(dir, 'config.toml');
    await writeFile(
      configPath,
      [
        '[server]',
        `listen = "127.0.0.1:${port}"`,
        '[cache]',
        'offline = true',
        '[upstreams.acr]',
        'url = "https://registry.invalid"',
        'username = "user"',
        'password_env = "CLI_TEST_ACR_PASSWORD"',
      ].join('\n'),
    );
    const config = loadConfig({ path: configPath, env: { CLI_TEST_ACR_PASSWORD: 'x', ACR_MIRROR_ADMIN_TOKEN: TOKEN } });
    server = await startServer(config, createLogger('silent'));
  });

  afterAll(async () => {
    await server?.shutdown();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  // the upstream's password variable is deliberately absent: only the mirror needs it
  const cli = (args: string[], env: Record<string, string> = {}) =>
    run(process.execPath, [MAIN, ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ACR_MIRROR_ADMIN_TOKEN: TOKEN, ...env }, timeoutMs: 60_000 });

  it('warm, from --config', async () => {
    const r = await cli(['--config', configPath, 'warm', 'team/absent:1']);
    expect(r.stderr).not.toContain('cannot reach');
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/^failed +team\/absent:1 /m);
  });

  it('export, from $ACR_MIRROR_CONFIG', async () => {
    const r = await cli(['export', 'team/absent:1', '-o', join(dir, 'out.tar')], { ACR_MIRROR_CONFIG: configPath });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^acr-mirror export: upstream acr \(registry.invalid\) is offline/m);
    expect(r.stderr).not.toContain('cannot reach');
  });

  it('import, with --config after the command', async () => {
    const bundle = join(dir, 'not-a-bundle.tar');
    await writeFile(bundle, 'this is not a tar file');
    const r = await cli(['import', bundle, '--name', 'team/app', '--config', configPath]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^acr-mirror import: bundle rejected: the bundle is truncated or not a tar archive/m);
    expect(r.stderr).not.toContain('cannot reach');
  });

  it('healthcheck, and --url still wins over the configuration', async () => {
    expect((await cli(['--config', configPath, 'healthcheck'])).code).toBe(0);
    // Docker reserves a HEALTHCHECK's exit code 2, which every other command uses for a configuration error
    const misconfigured = await cli(['--config', join(dir, 'absent.toml'), 'healthcheck']);
    expect(misconfigured.code).toBe(1);
    expect(misconfigured.stderr).toContain('config file not found');
    const nobody = `http://127.0.0.1:${await freePort()}`;
    const elsewhere = await cli(['--config', configPath, 'healthcheck', '--url', nobody]);
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.stderr).toContain(`acr-mirror healthcheck: ${nobody}/healthz: connect ECONNREFUSED`);
    const unreachable = await cli(['--config', configPath, 'export', 'team/app:1', '-o', join(dir, 'x.tar'), '--url', nobody]);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toContain(`acr-mirror export: cannot reach the mirror at ${nobody}: connect ECONNREFUSED`);
  });
});
