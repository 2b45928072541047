import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FaultProxy } from './fault-proxy.js';
import { ImageBuilder, type BuiltImage, type ImageSpec } from './images.js';
import { startOss, type Oss } from './oss.js';
import { freePort } from './ports.js';
import { startRegistry, type Registry } from './registry.js';
import { createSkopeo, type Skopeo } from './skopeo.js';
import type { TestCa } from './tls.js';
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
  /** The pull-only user the mirror logs in as. Default MIRROR_CREDENTIALS. */
  mirrorCredentials?: { username: string; password: string };
  /** Distribution's `auth.token.service` (ACR: `registry.aliyuncs.com:<region>:<n>`). Default SERVICE. */
  service?: string;
  /** Serve the mirror's side over HTTPS under realistic ACR host names; see UpstreamTlsOptions. */
  tls?: UpstreamTlsOptions;
  /** Caps each OSS blob download (nginx limit_rate, e.g. "20m"), like OSS's per-connection traffic limit. */
  ossLimitRate?: string;
}

/**
 * The registry front, the OSS front and the token server serve HTTPS with leaf certificates for these names,
 * signed by `ca`, on random 127.0.0.1 ports; every URL the mirror sees names them:
 * registryUrl `https://<registryHost>:<port>`, Distribution's realm `https://<authHost>:<port>/auth`, blob
 * redirects `https://<ossHost>:<port>/docker/registry/v2/...?Expires=..&Signature=..`. The mirror must pin the
 * three names to 127.0.0.1 (`hosts`) and trust `ca` (`ca_file`); `Upstream.tls` has both ready.
 * Pushes keep using a private plain-HTTP proxy (its challenges are rewritten to the plain token realm).
 */
export interface UpstreamTlsOptions {
  ca: TestCa;
  /** e.g. registry.cn-hangzhou.aliyuncs.com */
  registryHost: string;
  /** e.g. dockerauth.cn-hangzhou.aliyuncs.com */
  authHost: string;
  /** e.g. acr-bucket.oss-cn-hangzhou-internal.aliyuncs.com */
  ossHost: string;
}

export interface UpstreamTls {
  /** PEM file of the test CA (the mirror's `ca_file`). */
  caFile: string;
  registryHost: string;
  authHost: string;
  ossHost: string;
  /** Each name -> 127.0.0.1 (the mirror's `hosts`). */
  pins: Record<string, string>;
  /** `https://<authHost>:<port>/auth`, the realm Distribution announces. */
  realm: string;
}

/**
 * Distribution with token auth, nginx as OSS with expiring signed links, and the fault proxy in front of both.
 *
 *   mirror --> proxy.registryUrl --> Distribution --307--> (rewritten + signed) proxy.ossUrl --> nginx
 *                                        \-- 401 realm --> tokenServer
 */
export interface Upstream {
  /** What the mirror uses: the fault proxy's registry front (`https://<tls.registryHost>:<port>` with tls). */
  registryUrl: string;
  /** host:port of registryUrl, for docker:// references (with tls: the ACR name, which only pinning resolves). */
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
  /** Set when started with `tls`. */
  tls?: UpstreamTls;
  /** Child processes (Distribution, nginx). */
  pids: number[];
  /** host:port of the plain-HTTP push front (token auth as PUSH_CREDENTIALS); pushes there are not recorded. */
  pushHost: string;
  /** Builds and pushes (as the push user) an image; pushes are not recorded by the proxy. */
  pushImage(spec: ImageSpec): Promise<BuiltImage>;
  stop(): Promise<void>;
}

export async function startUpstream(opts: UpstreamOptions = {}): Promise<Upstream> {
  const mirrorCredentials = { ...(opts.mirrorCredentials ?? MIRROR_CREDENTIALS) };
  if (mirrorCredentials.username === PUSH_CREDENTIALS.username) throw new Error(`"${PUSH_CREDENTIALS.username}" is the push user`);
  const service = opts.service ?? SERVICE;
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
    const tlsOpts = opts.tls;
    const certs = tlsOpts
      ? await Promise.all([tlsOpts.registryHost, tlsOpts.authHost, tlsOpts.ossHost].map((h) => tlsOpts.ca.issue([h])))
      : undefined;
    const [tokenServer, registryPort, ossPort, skopeo] = await Promise.all([
      stoppable(
        TokenServer.start({
          dir: join(dir, 'token'),
          issuer: ISSUER,
          users: {
            [mirrorCredentials.username]: { password: mirrorCredentials.password, actions: ['pull'] },
            [PUSH_CREDENTIALS.username]: { password: PUSH_CREDENTIALS.password, actions: ['pull', 'push'] },
          },
          tokenLifetimeSec: opts.tokenLifetimeSec,
          ...(tlsOpts && certs ? { tls: { host: tlsOpts.authHost, cert: certs[1]!.cert, key: certs[1]!.key } } : {}),
        }),
      ),
      freePort(),
      freePort(),
      createSkopeo(join(dir, 'skopeo')),
    ]);
    const registryTarget = `http://127.0.0.1:${registryPort}`;
    const ossTarget = `http://127.0.0.1:${ossPort}`;
    const registryDir = join(dir, 'registry');
    const realm = tokenServer.tlsRealm ?? tokenServer.realm;
    const [registry, oss, proxy, pushProxy] = await Promise.all([
      stoppable(
        startRegistry({
          dir: registryDir,
          port: registryPort,
          realm,
          service,
          issuer: ISSUER,
          rootCertBundle: tokenServer.certPath,
          redirectBaseUrl: ossTarget,
        }),
      ),
      stoppable(startOss({ dir: join(dir, 'oss'), port: ossPort, root: join(registryDir, 'storage'), ...(opts.ossLimitRate ? { limitRate: opts.ossLimitRate } : {}) })),
      stoppable(
        FaultProxy.start({
          registryTarget,
          ossTarget,
          signedUrlTtlSec: opts.signedUrlTtlSec,
          ...(tlsOpts && certs
            ? {
                tls: {
                  registry: { host: tlsOpts.registryHost, cert: certs[0]!.cert, key: certs[0]!.key },
                  oss: { host: tlsOpts.ossHost, cert: certs[2]!.cert, key: certs[2]!.key },
                },
              }
            : {}),
        }),
      ),
      // Pushes go through a proxy of their own: skopeo HEADs a blob before uploading it, Distribution redirects
      // that HEAD too, and nginx refuses the unsigned link. Tests' counters and faults see only the mirror.
      // skopeo cannot pin host names, so with tls it is sent to the plain token realm.
      stoppable(
        FaultProxy.start({
          registryTarget,
          ossTarget,
          ...(realm !== tokenServer.realm ? { realm: { from: realm, to: tokenServer.realm } } : {}),
        }),
      ),
    ]);
    const images = opts.images ?? new ImageBuilder(join(dir, 'images'), skopeo);
    const pushHost = new URL(pushProxy.registryUrl).host;

    return {
      registryUrl: proxy.registryUrl,
      registryHost: new URL(proxy.registryUrl).host,
      directRegistryUrl: registry.url,
      service,
      credentials: mirrorCredentials,
      tokenServer,
      proxy,
      registry,
      oss,
      skopeo,
      dir,
      ...(tlsOpts
        ? {
            tls: {
              caFile: tlsOpts.ca.certPath,
              registryHost: tlsOpts.registryHost,
              authHost: tlsOpts.authHost,
              ossHost: tlsOpts.ossHost,
              pins: Object.fromEntries([tlsOpts.registryHost, tlsOpts.authHost, tlsOpts.ossHost].map((h) => [h, '127.0.0.1'])),
              realm,
            },
          }
        : {}),
      pids: [registry.pid, oss.pid],
      pushHost,
      pushImage: (spec) => images.push(spec, { host: pushHost, ...PUSH_CREDENTIALS }),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
