import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { run, type RunResult } from './proc.js';

export interface SkopeoOptions {
  timeoutMs?: number;
  /** Extra environment on top of the clean one. */
  env?: Record<string, string>;
}

export type Skopeo = (args: readonly string[], opts?: SkopeoOptions) => Promise<RunResult>;

/**
 * A skopeo runner isolated in `dir`: its own policy, registries.conf, auth file, HOME and TMPDIR, nothing from
 * /etc/containers or the caller's env, and proxies pointing at a closed loopback port so that no request can
 * leave the machine. TLS flags (`--src-tls-verify=false`...) are the caller's.
 */
export async function createSkopeo(dir: string): Promise<Skopeo> {
  const home = join(dir, 'home');
  const tmp = join(dir, 'tmp');
  const registriesD = join(dir, 'registries.d');
  const policy = join(dir, 'policy.json');
  const registriesConf = join(dir, 'registries.conf');
  await Promise.all([home, tmp, registriesD].map((d) => mkdir(d, { recursive: true })));
  const [closedPort] = await Promise.all([
    freePort(),
    writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] })),
    writeFile(registriesConf, 'unqualified-search-registries = []\n'),
  ]);
  const deadProxy = `http://127.0.0.1:${closedPort}`;
  const baseEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    TMPDIR: tmp,
    HTTP_PROXY: deadProxy,
    HTTPS_PROXY: deadProxy,
    NO_PROXY: '127.0.0.1,localhost',
    REGISTRY_AUTH_FILE: join(dir, 'auth.json'),
    CONTAINERS_REGISTRIES_CONF: registriesConf,
  };
  const globalFlags = ['--policy', policy, '--registries-conf', registriesConf, '--registries.d', registriesD, '--tmpdir', tmp];
  return (args, opts = {}) =>
    run('skopeo', [...globalFlags, ...args], {
      env: { ...baseEnv, ...opts.env },
      timeoutMs: opts.timeoutMs ?? 120_000,
    });
}
