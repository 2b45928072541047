import { Hono, type Context } from 'hono';
import { RegistryError } from '../http/errors.js';
import { REGISTRY_HEADERS } from '../http/respond.js';
import { bufferedResponse } from '../http/stream-response.js';
import type { BlobService } from '../proxy/blob-service.js';
import type { ManifestService, ServedManifest } from '../proxy/manifest-service.js';
import { acceptedTypes } from '../proxy/media-types.js';
import type { UpstreamTarget } from '../proxy/target.js';
import type { ReferrersService } from '../proxy/referrers-service.js';
import type { TagService } from '../proxy/tag-service.js';
import { OCI_INDEX } from '../oci/media-types.js';
import { FILTERS_APPLIED_HEADER, referrersIndex } from '../oci/referrers.js';
import { type Env, requestHeader } from '../http/middleware.js';
import { referenceString } from '../oci/reference.js';
import { parseRegistryPath } from './path.js';
import { blobHeaders, blobResponse, manifestResponse } from './responses.js';

export interface RegistryApiDeps {
  /** Client repository name (+ containerd's ns) -> upstream target; throws NAME_UNKNOWN when no route matches. */
  route(name: string, ns?: string): UpstreamTarget;
  manifests: ManifestService;
  blobs: BlobService;
  tags: TagService;
  referrers: ReferrersService;
  /** Told of body bytes sent to clients. */
  onServed: (kind: 'manifest' | 'blob', bytes: number) => void;
  /** Told of each manifest served by tag (GET or HEAD), with the upstream and its repository name. */
  onTagRequest: (upstream: string, repo: string, tag: string) => void;
  /** Told of each manifest body served (GET), e.g. to fetch its layers ahead. */
  onManifestServed?: (target: UpstreamTarget, manifest: ServedManifest) => void;
}

const READ_METHODS = new Set(['GET', 'HEAD']);
const MAX_TAGS_PAGE = 10_000;

/** The read-only /v2 API. It only translates between HTTP and the services; it never touches storage. */
export function registryApi(deps: RegistryApiDeps): Hono<Env> {
  const app = new Hono<Env>();
  app.all('/v2/*', (c) => handle(c, deps));
  app.all('/v2', (c) => handle(c, deps));
  return app;
}

/** Resolves the route and records what the request is about for the access log. */
function target(c: Context<Env>, deps: RegistryApiDeps, name: string, ref?: string): UpstreamTarget {
  c.set('subject', { repo: name, ...(ref ? { ref } : {}) });
  const t = deps.route(name, c.req.query('ns'));
  c.set('subject', { repo: name, ...(ref ? { ref } : {}), upstream: t.client.name, ...(t.repo !== name ? { upstreamRepo: t.repo } : {}) });
  return t;
}

async function handle(c: Context<Env>, deps: RegistryApiDeps): Promise<Response> {
  const method = c.req.method;
  if (!READ_METHODS.has(method)) {
    throw new RegistryError('UNSUPPORTED', `${method} is not supported: this mirror is read-only`, { headers: { allow: 'GET, HEAD' } });
  }
  const head = method === 'HEAD';
  const path = parseRegistryPath(c.req.path);
  if (!path) throw new RegistryError('NOT_FOUND', `no such endpoint: ${method} ${c.req.path}`);
  switch (path.kind) {
    case 'ping':
      return bufferedResponse(c, 200, { ...REGISTRY_HEADERS, 'content-type': 'application/json', 'content-length': '2' }, head ? null : '{}');
    case 'catalog':
      throw new RegistryError('UNSUPPORTED', 'the catalog is not served by this mirror');
    case 'manifest': {
      const to = target(c, deps, path.name, referenceString(path.reference));
      const m = await deps.manifests.get(to, path.reference, acceptedTypes(requestHeader(c, 'accept')), head);
      if (!head) deps.onServed('manifest', m.size);
      if (!head) deps.onManifestServed?.(to, m);
      if (path.reference.kind === 'tag') deps.onTagRequest(to.client.name, to.repo, path.reference.tag);
      c.set('cache', m.outcome);
      return manifestResponse(c, m, head);
    }
    case 'blob': {
      const to = target(c, deps, path.name, path.digest);
      if (head) {
        const { size, outcome } = await deps.blobs.head(to, path.digest);
        c.set('cache', outcome);
        const headers = { ...blobHeaders(path.digest), 'content-type': 'application/octet-stream', 'x-cache': outcome, ...(size !== null ? { 'content-length': String(size) } : {}) };
        return bufferedResponse(c, 200, headers, null);
      }
      const location = await deps.blobs.redirect(path.digest);
      if (location) {
        c.set('cache', 'hit');
        // Not cacheable like the bytes: the link expires.
        return bufferedResponse(c, 307, { ...REGISTRY_HEADERS, 'docker-content-digest': path.digest, location, 'content-length': '0' }, null);
      }
      const blob = await deps.blobs.get(to, path.digest, c.get('client'));
      c.set('cache', blob.outcome);
      return blobResponse(c, path.digest, blob, (n) => deps.onServed('blob', n));
    }
    case 'referrers': {
      const to = target(c, deps, path.name, path.digest);
      const artifactType = c.req.query('artifactType') || undefined;
      const list = await deps.referrers.list(to, path.digest, artifactType);
      c.set('cache', list.outcome);
      const body = referrersIndex(list.manifests);
      const headers: Record<string, string> = { ...REGISTRY_HEADERS, 'content-type': OCI_INDEX, 'content-length': String(body.length), 'x-cache': list.outcome };
      if (list.filtered) headers[FILTERS_APPLIED_HEADER] = 'artifactType';
      return bufferedResponse(c, 200, headers, head ? null : body);
    }
    case 'tags': {
      const to = target(c, deps, path.name);
      const page = tagPage(c);
      const result = await deps.tags.list(to, page);
      const headers: Record<string, string> = { ...REGISTRY_HEADERS, 'content-type': 'application/json' };
      if (result.next !== null) {
        const q = new URLSearchParams({ ...(page.n !== undefined ? { n: String(page.n) } : {}), last: result.next });
        headers.link = `</v2/${path.name}/tags/list?${q}>; rel="next"`;
      }
      const body = JSON.stringify({ name: path.name, tags: result.tags });
      return bufferedResponse(c, 200, { ...headers, 'content-length': String(Buffer.byteLength(body)) }, head ? null : body);
    }
  }
}

function tagPage(c: Context): { n?: number; last?: string } {
  const n = c.req.query('n');
  const last = c.req.query('last');
  const page: { n?: number; last?: string } = {};
  if (n !== undefined && n !== '') {
    if (!/^\d+$/.test(n) || Number(n) > MAX_TAGS_PAGE) throw new RegistryError('PAGINATION_INVALID', `n must be an integer from 0 to ${MAX_TAGS_PAGE}`);
    page.n = Number(n);
  }
  if (last !== undefined && last !== '') page.last = last;
  return page;
}
