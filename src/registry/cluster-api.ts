import { type Context, Hono } from 'hono';
import type { Secret } from '../config/secret.js';
import { RegistryError } from '../http/errors.js';
import { type Env, requestHeader } from '../http/middleware.js';
import type { BlobService } from '../proxy/blob-service.js';
import type { ManifestService } from '../proxy/manifest-service.js';
import { acceptedTypes } from '../proxy/media-types.js';
import type { UpstreamTarget } from '../proxy/target.js';
import { parseRegistryPath } from './path.js';
import { blobResponse, manifestResponse } from './responses.js';

export interface ClusterApiDeps {
  secret: Secret;
  /** The configured upstream of that name and a repository there; null for an unknown upstream. */
  target(upstream: string, repo: string): UpstreamTarget | null;
  blobs: BlobService;
  manifests: ManifestService;
  onServed: (kind: 'manifest' | 'blob', bytes: number) => void;
}

/**
 * The owner's side of a forwarded miss: GET /_cluster/v1/<upstream>/<repo>/blobs/<digest> (Range allowed) and
 * .../manifests/<digest>, open only to requests with the cluster secret. Served from the cache or by joining or
 * starting this replica's fill from the upstream; never forwarded again (one hop).
 */
export function clusterApi(deps: ClusterApiDeps): Hono<Env> {
  const app = new Hono<Env>();
  app.all('/_cluster/*', (c) => handle(c, deps));
  return app;
}

async function handle(c: Context<Env>, deps: ClusterApiDeps): Promise<Response> {
  if (!authorized(requestHeader(c, 'authorization'), deps.secret)) throw new RegistryError('UNAUTHORIZED', 'cluster secret required');
  if (c.req.method !== 'GET') throw new RegistryError('UNSUPPORTED', `${c.req.method} is not supported here`, { headers: { allow: 'GET' } });
  const m = /^\/_cluster\/v1\/([A-Za-z0-9_-]+)\/(.+)$/s.exec(c.req.path);
  const path = m ? parseRegistryPath(`/v2/${m[2]}`) : null;
  const to = path && (path.kind === 'blob' || path.kind === 'manifest') ? deps.target(m![1]!, path.name) : null;
  if (!path || !to) throw new RegistryError('NOT_FOUND', `no such endpoint: ${c.req.method} ${c.req.path}`);
  c.set('subject', { repo: to.repo, upstream: to.client.name });
  if (path.kind === 'blob') {
    const blob = await deps.blobs.getForPeer(to, path.digest, c.req.raw.signal);
    c.set('cache', blob.outcome);
    return blobResponse(c, path.digest, blob, (n) => deps.onServed('blob', n));
  }
  if (path.kind !== 'manifest' || path.reference.kind !== 'digest') throw new RegistryError('NOT_FOUND', 'only manifests by digest are forwarded');
  const served = await deps.manifests.get(to, path.reference, acceptedTypes(requestHeader(c, 'accept')), false, { fromPeer: true });
  deps.onServed('manifest', served.size);
  c.set('cache', served.outcome);
  return manifestResponse(c, served, false);
}

/** `Authorization: Bearer <secret>`, compared in constant time (Secret.matches). */
function authorized(header: string | undefined, secret: Secret): boolean {
  const given = /^Bearer (.+)$/.exec(header ?? '')?.[1];
  return given !== undefined && secret.matches(given);
}
