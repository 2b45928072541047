import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FaultProxy } from './fault-proxy.js';
import { ImageBuilder, type BuiltImage, type ImageSpec } from './images.js';
import { startOss, type Oss } from './oss.js';
import { freePort } from './ports.js';
import { startRegistry, type Registry } from './registry.js';
import { createSkopeo, type Skopeo } from './skopeo.js';
import { TokenServer } from './token-server.js';

export const SERVICE = 'registry.test';
export const ISSUER = 'acr-test-issuer';
export const MIRROR_CREDENTIALS = { username: 'mirror', password: 'mirror-secret' } as const;
export const PUSH_CREDENTIALS = { username: 'pusher', password: 'push-secret' } as const;

export interface UpstreamOptions {
  /** Token lifetime (Distribution adds 60 s of leeway to exp). Default 60. */
  tokenLifetimeSec?: number;
  /** Lifetime of the signed OSS links in blob redirects. Default 1200. */
  signedUrlTtlSec?: number;
  /** Reuse a builder (and its layer cache) across upstreams; by default one lives in this upstream's temp dir. */
  images?: ImageBuilder;
}

/**
 * Distribution with token auth, nginx as OSS with expiring signed links, and the fault proxy in front of both.
 *
 *   mirror --> proxy.registryUrl --> Distribution --307--> (rewritten + signed) proxy.ossUrl --> nginx
 *                                        \-- 401 realm --> tokenServer
 */
export interface Upstream {
  /** What the mirror uses: the fault proxy's registry front. */
  registryUrl: string;
  /** host:port of registryUrl, for docker:// references. */
  registryHost: string;
  /** Distribution itself (its blob redirects are unsigned, so nginx refuses them). */
  directRegistryUrl: string;
  service: string;
  credentials: { username: string; password: string };
  /** Also serves pushImage()'s user: filter `issued` by user when counting the mirror's tokens. */
  tokenServer: TokenServer;
  proxy: FaultProxy;
  registry: Registry;
  oss: Oss;
  /** skopeo isolated in this upstream's temp dir. */
  skopeo: Skopeo;
  /** Temp dir holding everything; removed by stop(). */
  dir: string;
  /** Child processes (Distribution, nginx). */
  pids: number[];
  /** Builds and pushes (as the push user) an image; pushes are not recorded by the proxy. */
  pushImage(spec: ImageSpec): Promise<BuiltImage>;
  stop(): Promise<void>;
}

export async function startUpstream(opts: UpstreamOptions = {}): Promise<Upstream> {
  const dir = await mkdtemp(join(tmpdir(), 'acr-upstream-'));
  const cleanups: Array<() => Promise<void>> = [];
  /** Registers the service's stop() before it has started, so a failed start-up still stops the others. */
  const stoppable = <T extends { stop(): Promise<void> }>(starting: Promise<T>): Promise<T> => {
    cleanups.push(async () => (await starting.catch(() => undefined))?.stop());
    return starting;
  };
  const stop = async (): Promise<void> => {
    await Promise.allSettled(cleanups.splice(0).map((c) => c()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await mkdir(join(dir, 'token'));
    const [tokenServer, registryPort, ossPort, skopeo] = await Promise.all([
      stoppable(
        TokenServer.start({
          dir: join(dir, 'token'),
          issuer: ISSUER,
          users: {
            [MIRROR_CREDENTIALS.username]: { password: MIRROR_CREDENTIALS.password, actions: ['pull'] },
            [PUSH_CREDENTIALS.username]: { password: PUSH_CREDENTIALS.password, actions: ['pull', 'push'] },
          },
          tokenLifetimeSec: opts.tokenLifetimeSec,
        }),
      ),
      freePort(),
      freePort(),
      createSkopeo(join(dir, 'skopeo')),
    ]);
    const registryTarget = `http://127.0.0.1:${registryPort}`;
    const ossTarget = `http://127.0.0.1:${ossPort}`;
    const registryDir = join(dir, 'registry');
    const [registry, oss, proxy, pushProxy] = await Promise.all([
      stoppable(
        startRegistry({
          dir: registryDir,
          port: registryPort,
          realm: tokenServer.realm,
          service: SERVICE,
          issuer: ISSUER,
          rootCertBundle: tokenServer.certPath,
          redirectBaseUrl: ossTarget,
        }),
      ),
      stoppable(startOss({ dir: join(dir, 'oss'), port: ossPort, root: join(registryDir, 'storage') })),
      stoppable(FaultProxy.start({ registryTarget, ossTarget, signedUrlTtlSec: opts.signedUrlTtlSec })),
      // Pushes go through a proxy of their own: skopeo HEADs a blob before uploading it, Distribution redirects
      // that HEAD too, and nginx refuses the unsigned link. Tests' counters and faults see only the mirror.
      stoppable(FaultProxy.start({ registryTarget, ossTarget })),
    ]);
    const images = opts.images ?? new ImageBuilder(join(dir, 'images'), skopeo);
    const pushHost = new URL(pushProxy.registryUrl).host;

    return {
      registryUrl: proxy.registryUrl,
      registryHost: new URL(proxy.registryUrl).host,
      directRegistryUrl: registry.url,
      service: SERVICE,
      credentials: { ...MIRROR_CREDENTIALS },
      tokenServer,
      proxy,
      registry,
      oss,
      skopeo,
      dir,
      pids: [registry.pid, oss.pid],
      pushImage: (spec) => images.push(spec, { host: pushHost, ...PUSH_CREDENTIALS }),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
