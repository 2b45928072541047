import type { Context, MiddlewareHandler, Next } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { AddressList } from '../access/address-list.js';
import type { FailureThrottle } from '../access/failure-throttle.js';
import { RegistryError } from '../http/errors.js';
import type { Env } from '../http/middleware.js';
import type { AdminAuth } from './auth.js';
import { htmlPage } from './html-page.js';
import { loginPage } from './ui.js';

/** The header the page's own script sends with its JSON calls; a cross-site form cannot send it. */
const PAGE_REQUEST_HEADER = 'x-requested-with';
const PAGE_REQUEST_VALUE = 'acr-mirror';

/** The login and logout forms are tiny; a JSON body holds at most 1,000 image references. */
const FORM_BODY_LIMIT = 4 * 1024;
const JSON_BODY_LIMIT = 256 * 1024;

export interface AdminGuardDeps {
  auth: AdminAuth;
  /** admin.allow */
  allow: AddressList;
  /** Failed logins (form or bearer) per client address. */
  failures: FailureThrottle;
}

/**
 * In front of every /admin route: the admin.allow list, the token (bearer or session cookie, with failed tries
 * throttled per address), what the session cookie may do, and the body size limits. The login form checks its
 * token itself.
 *
 * The cookie authorizes the page's GETs and event stream, and its warm and delete calls when they carry the page's
 * header and come from the same origin; logout needs the same origin. Import and export need the bearer token.
 */
export function adminGuard(deps: AdminGuardDeps): MiddlewareHandler<Env> {
  return async (c, next) => {
    const address = c.get('client');
    if (!deps.allow.has(address)) throw new RegistryError('DENIED', `client address ${address ?? 'unknown'} may not use the admin API (admin.allow)`);
    const login = c.req.method === 'POST' && c.req.path === '/admin/ui/login';
    // Every token check waits out the throttle, a right token too: otherwise guessing would just go on.
    if (login || c.req.header('authorization') !== undefined) {
      const wait = deps.failures.retryAfter(address);
      if (wait) throw new RegistryError('TOO_MANY_REQUESTS', 'too many failed admin logins from this address: try again later', { headers: { 'retry-after': String(wait) } });
    }
    const credential = login ? 'none' : deps.auth.credential(c);
    if (credential === 'wrong') {
      deps.failures.failed(address);
      throw tokenProblem('admin token rejected: the bearer token is not the configured admin token');
    }
    const allowed = login || credential === 'bearer' || (credential === 'session' && sessionMay(c));
    if (allowed === true) return limitBody(c, next);
    if (allowed === 'cross-site') throw new RegistryError('DENIED', 'the session cookie works only for the admin page\'s own requests');
    if (c.req.method === 'GET' && c.req.path === '/admin/ui') return htmlPage(c, (nonce) => loginPage({ nonce }), 401);
    throw tokenProblem('admin token required: send Authorization: Bearer <token>');
  };
}

/** Whether the session cookie authorizes this request: yes, no (not the page's own request) or never (token only). */
function sessionMay(c: Context<Env>): true | 'cross-site' | false {
  const { method, path } = c.req;
  if (method === 'GET' || method === 'HEAD') return true;
  if (method === 'POST' && path === '/admin/ui/logout') return sameOrigin(c) || 'cross-site';
  if ((method === 'POST' && path === '/admin/warm') || (method === 'DELETE' && path.startsWith('/admin/images/'))) {
    return (sameOrigin(c) && c.req.header(PAGE_REQUEST_HEADER) === PAGE_REQUEST_VALUE) || 'cross-site';
  }
  return false;
}

/** Sec-Fetch-Site when the browser sends it, else the Origin header against the request's own origin. */
function sameOrigin(c: Context<Env>): boolean {
  const site = c.req.header('sec-fetch-site');
  if (site !== undefined) return site === 'same-origin';
  return c.req.header('origin') === new URL(c.req.url).origin;
}

function limitBody(c: Context<Env>, next: Next) {
  const { method, path } = c.req;
  if (method === 'POST' && path === '/admin/import') return next(); // streamed; bounded by the import itself
  const maxSize = path.startsWith('/admin/ui/') ? FORM_BODY_LIMIT : JSON_BODY_LIMIT;
  return bodyLimit({
    maxSize,
    onError: () => {
      throw new RegistryError('BODY_TOO_LARGE', `the request body is larger than ${maxSize / 1024} KiB`);
    },
  })(c, next);
}

function tokenProblem(message: string): RegistryError {
  return new RegistryError('UNAUTHORIZED', message, {
    headers: { 'www-authenticate': 'Bearer realm="acr-mirror admin"' },
  });
}
