import { type Context, Hono } from 'hono';
import { deleteCookie, setCookie } from 'hono/cookie';
import { type SSEStreamingApi, streamSSE } from 'hono/streaming';
import type { Logger } from 'pino';
import { z } from 'zod';
import { AddressList, isLoopback } from '../access/address-list.js';
import { type FailureThrottle, loginFailureThrottle } from '../access/failure-throttle.js';
import { RegistryError } from '../http/errors.js';
import type { Env } from '../http/middleware.js';
import { formatPlatform, parsePlatform } from '../oci/platform.js';
import { parseName, parseReference } from '../oci/reference.js';
import { type AdminAuth, SESSION_COOKIE, SESSION_TTL_MS } from './auth.js';
import { adminGuard } from './guard.js';
import { htmlPage } from './html-page.js';
import type { Inventory } from './inventory.js';
import type { TrafficHistory } from '../observability/traffic-history.js';
import type { UpstreamHealth } from '../upstream/health.js';
import { type AdminPageData, adminPage, adminPageParts, loginPage } from './ui.js';
import type { WarmJob } from './warm-job.js';
import type { Warmer } from './warmer.js';
import type { BundleSourceDeps } from '../bundle/export.js';
import type { BundleImportDeps } from '../bundle/import.js';
import { bundleRoutes } from './bundle-routes.js';

export interface AdminApiDeps {
  /** null: no admin token is configured and every /admin route answers 404 saying so. */
  auth: AdminAuth | null;
  warmer: Warmer;
  inventory: Inventory;
  traffic: TrafficHistory;
  /** Configured upstream names (DELETE needs one when there are several). */
  upstreams: string[];
  upstreamHealth: () => UpstreamHealth[];
  bundles: BundleSourceDeps & BundleImportDeps;
  log: Logger;
  /** admin.allow */
  allow: string[];
  /** An HTTPS listener exists: the login form refuses plain HTTP from other hosts. */
  httpsListener: boolean;
  now: () => number;
}

/** How often an event stream sends a running job's progress (only when it changed). */
const PROGRESS_EVERY_MS = 250;
/** A comment line this often keeps proxies from closing a quiet event stream. */
const KEEPALIVE_EVERY_MS = 15_000;
const MAX_IMAGES = 1000;
/** Jobs the page lists (each opens to its per-image results). */
const RECENT_JOBS = 10;

const warmBody = z
  .object({
    images: z.array(z.string().min(1).max(512)).min(1).max(MAX_IMAGES),
    platforms: z
      .union([
        z.literal('all'),
        z.array(z.string().transform((p, ctx) => {
          const platform = parsePlatform(p);
          if (platform) return formatPlatform(platform);
          ctx.addIssue({ code: z.ZodIssueCode.custom, message: `invalid platform "${p}" (use os/architecture[/variant], e.g. linux/amd64)` });
          return z.NEVER;
        })).min(1),
      ])
      .default('all'),
    referrers: z.boolean().optional(),
  })
  .strict();

/**
 * The admin API and web page under /admin/, behind the admin token:
 *   POST /admin/warm, GET /admin/jobs, GET /admin/jobs/:id, GET /admin/jobs/:id/events (SSE),
 *   GET /admin/images, DELETE /admin/images/<name>:<tag>[?upstream=], GET /admin/stats, GET /admin/traffic,
 *   GET /admin/upstreams,
 *   POST /admin/export, POST /admin/import (bundle-routes.ts),
 *   GET /admin/ui (+ /admin/ui/parts, what the page refreshes), POST /admin/ui/login, POST /admin/ui/logout.
 */
export function adminApi(deps: AdminApiDeps): Hono<Env> {
  const app = new Hono<Env>();
  const auth = deps.auth;
  if (!auth) {
    app.all('/admin/*', () => {
      throw new RegistryError('NOT_FOUND', 'the admin API is disabled: no admin token is configured (set ACR_MIRROR_ADMIN_TOKEN, admin.token_env or admin.token_file)');
    });
    return app;
  }
  const failures = loginFailureThrottle(deps.now);
  app.use('/admin/*', adminGuard({ auth, allow: new AddressList(deps.allow), failures }));
  jobRoutes(app, deps);
  bundleRoutes(app, { bundles: deps.bundles, log: deps.log, imagesBody });
  imageRoutes(app, deps);
  pageRoutes(app, deps, auth, failures);
  app.all('/admin/*', (c) => {
    throw new RegistryError('NOT_FOUND', `no such admin endpoint: ${c.req.method} ${c.req.path} (see /admin/ui)`);
  });
  return app;
}

/** Warm jobs: start one, list them, read one, follow one as an event stream. */
function jobRoutes(app: Hono<Env>, deps: AdminApiDeps): void {
  app.post('/admin/warm', async (c) => {
    const body = await imagesBody(c);
    const job = deps.warmer.start(body);
    return c.json(job, 202, { location: `/admin/jobs/${job.id}` });
  });

  app.get('/admin/jobs', (c) => c.json({ jobs: deps.warmer.recent(50) }));

  app.get('/admin/jobs/:id', (c) => c.json(job(c.req.param('id'))));

  app.get('/admin/jobs/:id/events', (c) => {
    const id = c.req.param('id');
    job(id);
    return streamSSE(c, async (stream) => {
      let last = '';
      const send = async (event: 'progress' | 'end') => {
        const data = JSON.stringify(deps.warmer.get(id));
        if (event === 'progress' && data === last) return;
        last = data;
        await stream.writeSSE({ event, data });
      };
      await send('progress');
      const live = deps.warmer.live(id);
      if (live) await whileRunning(live, deps.warmer.stopping, stream, () => void send('progress'));
      // Still running means shutdown began: the stream just ends, and the next process resumes the job.
      if (stream.aborted || deps.warmer.live(id)) return;
      await send('end');
    });
  });

  function job(id: string) {
    const found = deps.warmer.get(id);
    if (!found) throw new RegistryError('NOT_FOUND', `no warm job ${id}`);
    return found;
  }
}

function imageRoutes(app: Hono<Env>, deps: AdminApiDeps): void {
  app.get('/admin/images', (c) => c.json({ images: deps.inventory.images() }));

  app.delete('/admin/images/:ref{.+}', (c) => {
    const ref = c.req.param('ref');
    const colon = ref.lastIndexOf(':');
    if (colon <= 0) invalid(`name a tag: /admin/images/<repository>:<tag>, got ${ref}`);
    const repository = parseName(ref.slice(0, colon));
    const reference = parseReference(ref.slice(colon + 1));
    if (reference.kind !== 'tag') invalid('name a tag, not a digest');
    const upstream = c.req.query('upstream') ?? (deps.upstreams.length === 1 ? deps.upstreams[0]! : undefined);
    if (!upstream) invalid(`several upstreams are configured: say which with ?upstream= (${deps.upstreams.join(', ')})`);
    const digest = deps.inventory.removeTag(upstream, repository, reference.tag);
    if (!digest) throw new RegistryError('NOT_FOUND', `${repository}:${reference.tag} is not cached for upstream ${upstream}`);
    deps.log.info({ upstream, repo: repository, ref: reference.tag, digest }, 'tag removed by the admin');
    return c.json({ deleted: { upstream, repository, tag: reference.tag, digest } });
  });

  app.get('/admin/stats', async (c) => c.json(await deps.inventory.stats()));
  app.get('/admin/traffic', async (c) => c.json({ minutes: await deps.traffic.minutes() }));
  app.get('/admin/upstreams', (c) => c.json({ upstreams: deps.upstreamHealth() }));
}

/** The web page, the parts it refreshes, and the login form that sets the session cookie. */
function pageRoutes(app: Hono<Env>, deps: AdminApiDeps, auth: AdminAuth, failures: FailureThrottle): void {
  const pageData = async (): Promise<AdminPageData> => ({
    images: deps.inventory.images(),
    stats: await deps.inventory.stats(),
    jobs: deps.warmer.recent(RECENT_JOBS),
    upstreams: deps.upstreamHealth(),
    traffic: await deps.traffic.minutes(),
    updatedAt: new Date(deps.now()).toISOString(),
  });
  app.get('/admin/ui', async (c) => {
    const data = await pageData();
    return htmlPage(c, (nonce) => adminPage({ nonce, ...data }), 200);
  });
  app.get('/admin/ui/parts', async (c) => c.html(adminPageParts(await pageData())));

  app.post('/admin/ui/login', async (c) => {
    const https = new URL(c.req.url).protocol === 'https:';
    if (!https && deps.httpsListener && !isLoopback(c.get('client'))) {
      throw new RegistryError('DENIED', 'log in over HTTPS (server.tls_listen): over plain HTTP the session cookie would cross the network in clear');
    }
    const form = await c.req.parseBody();
    const token = typeof form.token === 'string' ? form.token.trim() : '';
    if (!token || !auth.matches(token)) {
      failures.failed(c.get('client'));
      return htmlPage(c, (nonce) => loginPage({ nonce, error: 'wrong token' }), 401);
    }
    setCookie(c, SESSION_COOKIE, auth.issueSession(), { maxAge: SESSION_TTL_MS / 1000, path: '/admin', httpOnly: true, secure: https, sameSite: 'Strict' });
    return c.redirect('/admin/ui', 303);
  });

  // Ends every session, not only this browser's: there is one admin.
  app.post('/admin/ui/logout', (c) => {
    auth.revokeSessions();
    deleteCookie(c, SESSION_COOKIE, { path: '/admin' });
    return c.redirect('/admin/ui', 303);
  });
}

/** The {images, platforms, referrers} body of warm and export; throws INVALID_REQUEST saying what is wrong with it. */
async function imagesBody(c: Context<Env>): Promise<z.infer<typeof warmBody>> {
  if (!(c.req.header('content-type') ?? '').startsWith('application/json')) invalid('send a JSON body (Content-Type: application/json)');
  let raw: unknown;
  try {
    raw = await c.req.json();
  } catch {
    return invalid('the body is not valid JSON');
  }
  const parsed = warmBody.safeParse(raw);
  if (!parsed.success) invalid(parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
  return parsed.data;
}

/** Calls onProgress on each change and tick until the job ends, the client leaves or shutdown begins. */
function whileRunning(job: WarmJob, stopping: AbortSignal, stream: SSEStreamingApi, onProgress: () => void): Promise<void> {
  return new Promise<void>((resolve) => {
    if (stopping.aborted) return resolve();
    const tick = setInterval(onProgress, PROGRESS_EVERY_MS);
    const keepalive = setInterval(() => void stream.write(': keepalive\n\n'), KEEPALIVE_EVERY_MS);
    const onChange = () => (job.state === 'running' ? onProgress() : done());
    const done = () => {
      clearInterval(tick);
      clearInterval(keepalive);
      job.off('change', onChange);
      stopping.removeEventListener('abort', done);
      resolve();
    };
    job.on('change', onChange);
    stopping.addEventListener('abort', done);
    stream.onAbort(done);
  });
}

function invalid(message: string): never {
  throw new RegistryError('INVALID_REQUEST', message);
}
