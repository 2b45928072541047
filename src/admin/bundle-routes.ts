import type { Context, Hono } from 'hono';
import type { Logger } from 'pino';
import { PassThrough, Readable } from 'node:stream';
import { type BundleSourceDeps, planBundle, writeBundle } from '../bundle/export.js';
import { type BundleImportDeps, importBundle } from '../bundle/import.js';
import { incompleteHeader, platformsOf } from '../bundle/platforms.js';
import { RegistryError } from '../http/errors.js';
import type { Env } from '../http/middleware.js';
import { parseDigest } from '../oci/digest.js';
import { parsePlatform } from '../oci/platform.js';
import { parseName } from '../oci/reference.js';
import { listValues } from '../util/list-values.js';

export interface BundleRoutesDeps {
  bundles: BundleSourceDeps & BundleImportDeps;
  log: Logger;
  /** The validated {images, platforms} body shared with warm. */
  imagesBody(c: Context<Env>): Promise<{ images: string[]; platforms: 'all' | string[]; referrers?: boolean | undefined }>;
}

/**
 * POST /admin/export: an OCI layout tar of the images; X-Bundle-Index-Digest is the sha256 of its index.json,
 * X-Bundle-Platforms the platforms it holds, X-Bundle-Incomplete the indexes it holds only in part (platforms.ts).
 * POST /admin/import?names=<repository>[,...]&replace=true&expect_digest=sha256:...: such a tar as the body; names
 * (repeated or comma-separated) are the repositories it may add, required.
 */
export function bundleRoutes(app: Hono<Env>, deps: BundleRoutesDeps): void {
  // Export warms what is missing before answering, so an error is an OCI error rather than a broken tar.
  app.post('/admin/export', async (c) => {
    const request = await deps.imagesBody(c);
    const platforms = request.platforms === 'all' ? 'all' : request.platforms.map((p) => parsePlatform(p)!);
    const plan = await planBundle(deps.bundles, request.images, platforms, request.referrers === true);
    const body = new PassThrough();
    writeBundle(deps.bundles, plan, body).catch((err: unknown) => {
      deps.log.error({ err: (err as Error).message }, 'bundle export failed while streaming');
      body.destroy(err as Error);
    });
    return new Response(Readable.toWeb(body) as ReadableStream<Uint8Array>, {
      headers: {
        'content-type': 'application/x-tar',
        'content-length': String(plan.bytes),
        'x-bundle-images': String(plan.index.length),
        'x-bundle-index-digest': plan.indexDigest,
        'x-bundle-platforms': platformsOf(plan.images).join(','),
        'x-bundle-incomplete': incompleteHeader(plan.images),
      },
    });
  });

  app.post('/admin/import', async (c) => {
    const body = c.req.raw.body;
    if (!body) invalid('send the bundle tar as the request body');
    const names = listValues(c.req.queries('names') ?? []).map(parseName);
    const replace = c.req.query('replace') ?? 'false';
    if (replace !== 'true' && replace !== 'false') invalid(`replace= is true or false, not ${replace}`);
    const expect = c.req.query('expect_digest');
    const rules = { names, replace: replace === 'true', expectDigest: expect === undefined ? undefined : parseDigest(expect) };
    const bundle = Readable.fromWeb(body as import('node:stream/web').ReadableStream<Uint8Array>);
    // Not rate-limited like upstream failures: each import is an admin's own act behind the token.
    const report = await importBundle(deps.bundles, bundle, rules).catch((err: unknown) => {
      if (err instanceof RegistryError) deps.log.warn({ code: err.code, error: err.message, names }, 'bundle import rejected');
      throw err;
    });
    deps.log.info(report, 'bundle imported');
    return c.json(report);
  });
}

function invalid(message: string): never {
  throw new RegistryError('INVALID_REQUEST', message);
}
