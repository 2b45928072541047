import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { Context } from 'hono';
import { getCookie } from 'hono/cookie';
import type { Secret } from '../config/secret.js';

/** Set by the page's login form; holds a value derived from the token, never the token itself. */
export const SESSION_COOKIE = 'acr_mirror_admin';

const sha256 = (value: string) => createHash('sha256').update(value).digest();

/**
 * The admin token check. Requests carry `Authorization: Bearer <token>`, or (the web page) the session cookie
 * the login form set. Both are compared in constant time over their sha256, so neither timing nor length leaks.
 */
export class AdminAuth {
  readonly #token: Buffer;
  readonly #session: string;
  readonly #sessionDigest: Buffer;

  constructor(token: Secret) {
    this.#token = sha256(token.reveal());
    // Changing the token invalidates every session.
    this.#session = createHmac('sha256', token.reveal()).update('acr-mirror admin session').digest('base64url');
    this.#sessionDigest = sha256(this.#session);
  }

  matches(candidate: string): boolean {
    return timingSafeEqual(sha256(candidate), this.#token);
  }

  /** The session cookie's value after a successful login. */
  get session(): string {
    return this.#session;
  }

  /** Whether the request is the admin's. A bearer header, when sent, decides alone. */
  authorizes(c: Context): boolean {
    const header = c.req.header('authorization');
    if (header !== undefined) {
      const bearer = /^Bearer +(\S+) *$/i.exec(header)?.[1];
      return bearer !== undefined && this.matches(bearer);
    }
    const cookie = getCookie(c, SESSION_COOKIE);
    return cookie !== undefined && timingSafeEqual(sha256(cookie), this.#sessionDigest);
  }
}
