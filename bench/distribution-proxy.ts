import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from '../test/e2e/harness/ports.js';
import { startHttpDaemon } from '../test/e2e/harness/proc.js';
import type { Upstream } from '../test/e2e/harness/upstream.js';

export interface DistributionProxy {
  url: string;
  host: string;
  pid: number;
  /** Kills it and removes its storage. */
  stop(): Promise<void>;
}

/**
 * Distribution 2.8 (the same Debian package as the upstream) in pull-through mode: `proxy.remoteurl` with the
 * mirror's credentials, its own filesystem storage under dir, no client auth. The peer an operator would pick.
 */
export async function startDistributionProxy(dir: string, up: Pick<Upstream, 'registryUrl' | 'credentials'>): Promise<DistributionProxy> {
  const storage = join(dir, 'storage');
  await mkdir(storage, { recursive: true });
  const port = await freePort();
  const configPath = join(dir, 'config.yml');
  const logPath = join(dir, 'registry.log');
  // JSON is YAML.
  const config = {
    version: 0.1,
    log: { level: 'info', formatter: 'text', fields: { service: 'distribution-proxy' } },
    storage: { filesystem: { rootdirectory: storage }, maintenance: { uploadpurging: { enabled: false } } },
    http: { addr: `127.0.0.1:${port}`, secret: 'acr-mirror-bench' },
    proxy: { remoteurl: up.registryUrl, username: up.credentials.username, password: up.credentials.password },
  };
  await writeFile(configPath, JSON.stringify(config, null, 2));
  const url = `http://127.0.0.1:${port}`;
  const removeDir = () => rm(dir, { recursive: true, force: true });
  // Only PATH: Distribution panics at start-up with AWS_CA_BUNDLE set, and REGISTRY_* would override the config.
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  const daemon = await startHttpDaemon('docker-registry (proxy)', '/usr/bin/docker-registry', ['serve', configPath], env, logPath, {
    url: `${url}/v2/`,
    statuses: [200],
  }).catch(async (err: unknown) => {
    await removeDir();
    throw err;
  });
  const stop = async (): Promise<void> => {
    await daemon.stop();
    await removeDir();
  };
  return { url, host: `127.0.0.1:${port}`, pid: daemon.pid, stop };
}
