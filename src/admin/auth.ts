import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Context } from 'hono';
import { getCookie } from 'hono/cookie';
import type { Secret } from '../config/secret.js';

/** Set by the page's login form; holds a signed issue time, never the token. */
export const SESSION_COOKIE = 'acr_mirror_admin';
export const SESSION_TTL_MS = 12 * 3600_000;

/** What a request carries: the right bearer token, a live session cookie, a wrong Authorization header, or nothing usable. */
export type AdminCredential = 'bearer' | 'session' | 'wrong' | 'none';

const sha256 = (value: string | Buffer) => createHash('sha256').update(value).digest();

/**
 * The admin token check. Requests carry `Authorization: Bearer <token>`, or (the web page) the session cookie
 * the login form set. The token is compared in constant time over its sha256, so neither timing nor length leaks.
 *
 * A session cookie is `<issued ms>.<epoch>.<HMAC>`, signed with a key made at start: it lasts SESSION_TTL_MS,
 * logging out advances the epoch (ending every session), and a restart ends them all.
 */
export class AdminAuth {
  readonly #sessionKey = randomBytes(32);
  #epoch = 0;

  constructor(
    private readonly token: Secret,
    private readonly now: () => number,
  ) {}

  matches(candidate: string): boolean {
    return this.token.matches(candidate);
  }

  /** A new session cookie's value. */
  issueSession(): string {
    const claims = `${this.now()}.${this.#epoch}`;
    return `${claims}.${this.#sign(claims)}`;
  }

  /** Ends every session issued so far. */
  revokeSessions(): void {
    this.#epoch++;
  }

  /** The request's credential. A bearer header, when sent, decides alone. */
  credential(c: Context): AdminCredential {
    const header = c.req.header('authorization');
    if (header !== undefined) {
      const bearer = /^Bearer +(\S+) *$/i.exec(header)?.[1];
      return bearer !== undefined && this.matches(bearer) ? 'bearer' : 'wrong';
    }
    const cookie = getCookie(c, SESSION_COOKIE);
    return cookie !== undefined && this.#sessionLive(cookie) ? 'session' : 'none';
  }

  #sessionLive(value: string): boolean {
    const match = /^(\d{1,15})\.(\d{1,9})\.([\w-]{43})$/.exec(value);
    if (!match) return false;
    const [, issued, epoch, signature] = match as unknown as [string, string, string, string];
    if (!timingSafeEqual(sha256(signature), sha256(this.#sign(`${issued}.${epoch}`)))) return false;
    const age = this.now() - Number(issued);
    return Number(epoch) === this.#epoch && age >= 0 && age < SESSION_TTL_MS;
  }

  #sign(claims: string): string {
    return createHmac('sha256', this.#sessionKey).update(claims).digest('base64url');
  }
}
