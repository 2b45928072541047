import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startHttpDaemon } from './proc.js';

export interface RegistryOptions {
  /** Working directory: config, log and storage go here. */
  dir: string;
  port: number;
  realm: string;
  service: string;
  issuer: string;
  rootCertBundle: string;
  /** Origin that blob GETs are redirected to (the redirect middleware keeps only scheme://host of it). */
  redirectBaseUrl: string;
}

export interface Registry {
  url: string;
  /** Filesystem driver root; blobs live under docker/registry/v2/blobs/sha256/<2>/<hex>/data. */
  storageRoot: string;
  logPath: string;
  pid: number;
  stop(): Promise<void>;
}

/** CNCF Distribution 2.8 (Debian's docker-registry) with token auth and blob redirects. */
export async function startRegistry(opts: RegistryOptions): Promise<Registry> {
  const storageRoot = join(opts.dir, 'storage');
  const configPath = join(opts.dir, 'config.yml');
  const logPath = join(opts.dir, 'registry.log');
  await mkdir(storageRoot, { recursive: true });
  // JSON is YAML; JSON.stringify quotes every path and URL safely.
  const config = {
    version: 0.1,
    log: { level: 'info', formatter: 'text', fields: { service: 'upstream-registry' } },
    storage: {
      filesystem: { rootdirectory: storageRoot },
      delete: { enabled: true },
      maintenance: { uploadpurging: { enabled: false } },
    },
    http: { addr: `127.0.0.1:${opts.port}`, secret: 'acr-mirror-e2e' },
    auth: {
      token: {
        realm: opts.realm,
        service: opts.service,
        issuer: opts.issuer,
        rootcertbundle: opts.rootCertBundle,
      },
    },
    middleware: { storage: [{ name: 'redirect', options: { baseurl: opts.redirectBaseUrl } }] },
  };
  await writeFile(configPath, JSON.stringify(config, null, 2));

  // A minimal env: Distribution panics at start-up when AWS_CA_BUNDLE is set, and REGISTRY_* would override config.
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  const url = `http://127.0.0.1:${opts.port}`;
  const daemon = await startHttpDaemon('docker-registry', '/usr/bin/docker-registry', ['serve', configPath], env, logPath, { url: `${url}/v2/`, statuses: [401] });
  return { url, storageRoot, logPath, pid: daemon.pid, stop: () => daemon.stop() };
}
