import { createHash } from 'node:crypto';
import { Hono } from 'hono';
import type { Fetch } from '../../src/upstream/transport.js';

export interface FakeCall {
  host: string;
  method: string;
  path: string;
  authorization: string | null;
  range: string | null;
  accept: string | null;
}

export interface FakeImage {
  repo: string;
  tag: string;
  manifest: Buffer;
  manifestDigest: string;
  mediaType: string;
  blobs: Map<string, Buffer>;
}

export const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A deterministic pseudo-random, incompressible buffer. */
export function randomBlob(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export function makeImage(repo: string, tag: string, layerSizes: number[], seed = 1): FakeImage {
  const blobs = new Map<string, Buffer>();
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', seed }));
  blobs.set(sha256(config), config);
  const layers = layerSizes.map((size, i) => {
    const b = randomBlob(size, seed * 1000 + i + 1);
    blobs.set(sha256(b), b);
    return { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(b), size };
  });
  const mediaType = 'application/vnd.oci.image.manifest.v1+json';
  const manifest = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length }, layers }),
  );
  return { repo, tag, manifest, manifestDigest: sha256(manifest), mediaType, blobs };
}

/** An intercept for FakeUpstream: every request fails as fetch does when nothing listens (upstream down). */
export const connectionRefused = (): never => {
  throw Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
};

/**
 * An in-memory registry (registry.test) with a token service (auth.test) and object storage (oss.test)
 * behind one injected fetch. Hooks let tests inject faults; calls are recorded.
 */
export class FakeUpstream {
  readonly calls: FakeCall[] = [];
  readonly images: FakeImage[] = [];
  readonly issued: string[] = [];
  user = 'mirror';
  password = 'mirror-secret';
  tokenLifetimeSec = 300;
  /** `Expires` (epoch seconds) of the signed OSS links in blob redirects. */
  linkExpires = 9999999999;
  /** Replaces the user/password check of the token service (e.g. temporary passwords that expire). */
  acceptLogin: ((user: string, password: string) => boolean) | null = null;
  /** Per-request override: return a Response to short-circuit, or undefined to continue. */
  intercept: ((call: FakeCall) => Response | undefined) | null = null;
  /** Whether tags/list honours n/last and sends a Link header (Distribution 3, ACR); otherwise it sends every tag. */
  paginatesTags = false;
  /** The Referrers API (OCI 1.1): absent answers 404 on the endpoint, as Distribution 2.8 does. */
  referrersApi: 'native' | 'absent' = 'native';
  /** Descriptors per referrers page (a Link header to the next); null: one page. */
  referrersPageSize: number | null = null;
  /** Whether the Referrers API applies the artifactType filter (and says so in OCI-Filters-Applied). */
  filtersReferrers = true;
  /** Transforms an OSS blob body (e.g. corrupt or truncate it). */
  ossBody: ((digest: string, body: Buffer, call: FakeCall) => Buffer | ReadableStream<Uint8Array>) | null = null;
  /** Whether the OSS stand-in ignores Range and always answers 200 with the whole blob. */
  ignoresRange = false;
  readonly #valid = new Set<string>();

  add(image: FakeImage): FakeImage {
    this.images.push(image);
    return image;
  }

  /** Counts recorded calls; `authorized` keeps only calls that carried credentials (not the first 401 probe). */
  count(filter: { host?: string; method?: string; pathIncludes?: string; authorized?: boolean }): number {
    return this.calls.filter(
      (c) =>
        (filter.authorized === undefined || (c.authorization !== null) === filter.authorized) &&
        (filter.host === undefined || c.host === filter.host) &&
        (filter.method === undefined || c.method === filter.method) &&
        (filter.pathIncludes === undefined || c.path.includes(filter.pathIncludes)),
    ).length;
  }

  revokeTokens(): void {
    this.#valid.clear();
  }

  readonly fetch: Fetch = async (url, init) => {
    const u = new URL(url);
    const call: FakeCall = {
      host: u.host,
      method: init.method,
      path: u.pathname + u.search,
      authorization: init.headers.authorization ?? null,
      range: init.headers.range ?? null,
      accept: init.headers.accept ?? null,
    };
    this.calls.push(call);
    const early = this.intercept?.(call);
    if (early) return early;
    const req = new Request(url, { method: init.method, headers: init.headers, ...(init.signal ? { signal: init.signal } : {}) });
    if (u.host === 'registry.test') return this.#registry.fetch(req);
    if (u.host === 'auth.test') return this.#auth.fetch(req);
    if (u.host === 'oss.test') return this.#oss(call, u);
    throw Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' }) });
  };

  readonly #auth = new Hono().get('/token', (c) => {
    const [user, password] = Buffer.from((c.req.header('authorization') ?? '').replace(/^Basic /, ''), 'base64').toString().split(/:(.*)/s);
    const ok = this.acceptLogin ? this.acceptLogin(user ?? '', password ?? '') : user === this.user && password === this.password;
    if (!ok) return c.json({ errors: [{ code: 'UNAUTHORIZED' }] }, 401);
    const token = `tok-${this.issued.length + 1}-${c.req.query('scope')}`;
    this.issued.push(token);
    this.#valid.add(token);
    return c.json({ token, expires_in: this.tokenLifetimeSec, issued_at: new Date().toISOString() });
  });

  readonly #registry = (() => {
    const app = new Hono();
    const challenge = (repo?: string) =>
      `Bearer realm="https://auth.test/token",service="registry.test"${repo ? `,scope="repository:${repo}:pull"` : ''}`;
    app.use('*', async (c, next) => {
      const auth = c.req.header('authorization') ?? '';
      const token = auth.replace(/^Bearer /, '');
      const repo = /^\/v2\/(.+)\/(manifests|blobs|tags|referrers)\//.exec(c.req.path)?.[1];
      if (!this.#valid.has(token) || (repo && !token.endsWith(`repository:${repo}:pull`))) {
        return c.json({ errors: [{ code: 'UNAUTHORIZED' }] }, 401, { 'www-authenticate': challenge(repo) });
      }
      await next();
    });
    app.get('/v2/', (c) => c.json({}));
    app.on(['GET', 'HEAD'], '/v2/:name{.+}/manifests/:ref', (c) => {
      const { name, ref } = c.req.param();
      const img = this.images.find((i) => i.repo === name && (i.tag === ref || i.manifestDigest === ref));
      if (!img) return c.json({ errors: [{ code: 'MANIFEST_UNKNOWN' }] }, 404);
      const headers = { 'content-type': img.mediaType, 'docker-content-digest': img.manifestDigest, 'content-length': String(img.manifest.length) };
      return new Response(c.req.method === 'HEAD' ? null : new Uint8Array(img.manifest), { headers });
    });
    app.on(['GET', 'HEAD'], '/v2/:name{.+}/blobs/:digest', (c) => {
      const { name, digest } = c.req.param();
      const img = this.images.find((i) => i.repo === name && i.blobs.has(digest));
      if (!img) return c.json({ errors: [{ code: 'BLOB_UNKNOWN' }] }, 404);
      return new Response(null, { status: 307, headers: { location: `https://oss.test/blobs/${digest}?Expires=${this.linkExpires}&Signature=sig` } });
    });
    app.get('/v2/:name{.+}/referrers/:digest', (c) => {
      if (this.referrersApi === 'absent') return c.text('404 page not found', 404);
      const { name, digest } = c.req.param();
      const artifactType = this.filtersReferrers ? c.req.query('artifactType') : undefined;
      const all = this.images.filter((i) => i.repo === name).flatMap((i) => referrerOf(i, digest));
      const listed = artifactType === undefined ? all : all.filter((d) => d.artifactType === artifactType);
      const from = Number(c.req.query('page') ?? 0);
      const size = this.referrersPageSize ?? listed.length;
      const page = listed.slice(from, from + size);
      const headers: Record<string, string> = { 'content-type': 'application/vnd.oci.image.index.v1+json' };
      if (artifactType !== undefined) headers['oci-filters-applied'] = 'artifactType';
      if (from + size < listed.length) {
        const q = new URLSearchParams({ ...(artifactType !== undefined ? { artifactType } : {}), page: String(from + size) });
        headers.link = `</v2/${name}/referrers/${digest}?${q}>; rel="next"`;
      }
      return c.body(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: page }), 200, headers);
    });
    app.get('/v2/:name{.+}/tags/list', (c) => {
      const name = c.req.param('name');
      const all = this.images.filter((i) => i.repo === name).map((i) => i.tag).sort();
      if (!this.paginatesTags) return c.json({ name, tags: all });
      const last = c.req.query('last');
      const n = c.req.query('n');
      const rest = last === undefined ? all : all.filter((t) => t > last);
      const tags = n === undefined ? rest : rest.slice(0, Number(n));
      const more = tags.length < rest.length;
      const link = more ? { link: `</v2/${name}/tags/list?n=${n}&last=${tags.at(-1)}>; rel="next"` } : undefined;
      return c.json({ name, tags }, 200, link);
    });
    return app;
  })();

  #oss(call: FakeCall, u: URL): Response {
    const digest = u.pathname.replace('/blobs/', '');
    const blob = this.images.map((i) => i.blobs.get(digest)).find(Boolean);
    if (!blob) return new Response('<Error><Code>NoSuchKey</Code></Error>', { status: 404 });
    if (u.searchParams.get('Signature') !== 'sig') return new Response('<Error><Code>AccessDenied</Code></Error>', { status: 403 });
    const range = this.ignoresRange ? null : /^bytes=(\d+)-(\d*)$/.exec(call.range ?? '');
    // Like OSS and Distribution: no byte of an empty blob can be asked for.
    if (range && blob.length === 0) return new Response(null, { status: 416, headers: { 'content-range': 'bytes */0' } });
    const start = range ? Number(range[1]) : 0;
    const end = range?.[2] ? Math.min(Number(range[2]), blob.length - 1) : blob.length - 1;
    const transformed = this.ossBody ? this.ossBody(digest, blob, call) : blob;
    const headers: Record<string, string> = {};
    headers['content-length'] = String(end + 1 - start);
    if (range) headers['content-range'] = `bytes ${start}-${end}/${blob.length}`;
    if (Buffer.isBuffer(transformed)) {
      const body = transformed.subarray(start, end + 1);
      return new Response(call.method === 'HEAD' ? null : new Uint8Array(body), { status: range ? 206 : 200, headers });
    }
    return new Response(transformed, { status: range ? 206 : 200, headers });
  }
}

/** A body that sends prefix, then breaks the way undici reports a connection reset. */
export function brokenStream(prefix: Buffer): ReadableStream<Uint8Array> {
  let sent = false;
  return new ReadableStream({
    pull(controller) {
      if (!sent) {
        sent = true;
        return controller.enqueue(new Uint8Array(prefix));
      }
      controller.error(Object.assign(new TypeError('terminated'), { cause: Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }) }));
    },
  });
}

/**
 * An OCI index of one image per architecture (linux/<arch>), as FakeImages to add: the index under `tag`, each
 * child under the tag `<tag>-<arch>` (clients reach them by digest).
 */
export function makeIndex(repo: string, tag: string, architectures: string[], layerSizes: number[], seed = 1): { index: FakeImage; children: FakeImage[] } {
  const children = architectures.map((architecture, i) => {
    const child = makeImage(repo, `${tag}-${architecture}`, layerSizes, seed * 100 + i);
    return { child, architecture };
  });
  const mediaType = 'application/vnd.oci.image.index.v1+json';
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      manifests: children.map(({ child, architecture }) => ({
        mediaType: child.mediaType,
        digest: child.manifestDigest,
        size: child.manifest.length,
        platform: { os: 'linux', architecture },
      })),
    }),
  );
  return {
    index: { repo, tag, manifest, manifestDigest: sha256(manifest), mediaType, blobs: new Map() },
    children: children.map((c) => c.child),
  };
}

type ListedReferrer = { artifactType?: string | undefined } & Record<string, unknown>;

/** The referrers descriptor of an image whose subject is digest, as a registry lists it (none for other images). */
function referrerOf(image: FakeImage, digest: string): ListedReferrer[] {
  const doc = JSON.parse(image.manifest.toString()) as { subject?: { digest: string }; artifactType?: string; config?: { mediaType: string }; annotations?: unknown };
  if (doc.subject?.digest !== digest) return [];
  const artifactType = doc.artifactType ?? doc.config?.mediaType;
  return [{ mediaType: image.mediaType, digest: image.manifestDigest, size: image.manifest.length, artifactType, ...(doc.annotations ? { annotations: doc.annotations } : {}) }];
}

/**
 * An artifact manifest (OCI 1.1: an image manifest with artifactType, the empty config and one layer) whose
 * subject is `subject`, like a notation signature or an SBOM; under the tag `artifact-<seed>`.
 */
export function makeArtifact(subject: FakeImage, artifactType: string, seed: number): FakeImage {
  const empty = Buffer.from('{}');
  const payload = randomBlob(200, seed);
  const mediaType = 'application/vnd.oci.image.manifest.v1+json';
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      artifactType,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: empty.length },
      layers: [{ mediaType: `${artifactType}.payload`, digest: sha256(payload), size: payload.length }],
      subject: { mediaType: subject.mediaType, digest: subject.manifestDigest, size: subject.manifest.length },
      annotations: { 'org.opencontainers.image.created': '2026-01-01T00:00:00Z', seed: String(seed) },
    }),
  );
  const blobs = new Map([[sha256(empty), empty], [sha256(payload), payload]]);
  return { repo: subject.repo, tag: `artifact-${seed}`, manifest, manifestDigest: sha256(manifest), mediaType, blobs };
}

/** The referrers tag schema's index of `artifacts` for their subject: tag `sha256-<hex>` (what Distribution 2.8 holds). */
export function makeReferrersTag(subject: FakeImage, artifacts: FakeImage[]): FakeImage {
  const mediaType = 'application/vnd.oci.image.index.v1+json';
  const manifests = artifacts.flatMap((a) => referrerOf(a, subject.manifestDigest));
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, manifests }));
  return { repo: subject.repo, tag: subject.manifestDigest.replace(':', '-'), manifest, manifestDigest: sha256(manifest), mediaType, blobs: new Map() };
}
