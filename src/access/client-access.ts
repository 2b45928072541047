import { createHash, randomBytes } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { LRUCache } from 'lru-cache';
import { AddressList } from './address-list.js';
import { type FailureThrottle, loginFailureThrottle } from './failure-throttle.js';

export interface HtpasswdUser {
  name: string;
  hash: string;
}

/**
 * Who may use the mirror: client addresses by CIDR, and optionally HTTP Basic users with bcrypt hashes
 * (htpasswd -B). Verified credentials are remembered (by a hash, never in clear) so bcrypt runs once per
 * user and password, not on every request of a pull. Failed logins are counted per address.
 */
export class ClientAccess {
  readonly #allow: AddressList;
  readonly #users: Map<string, string> | null;
  readonly #verified = new LRUCache<string, string>({ max: 1000, ttl: 10 * 60_000 });
  readonly #failures: FailureThrottle;
  /** Compared against for an unknown user, so answering takes as long as for a known one with a wrong password. */
  #dummyHash: Promise<string> | null = null;

  constructor(allow: string[], users: HtpasswdUser[] | null, now: () => number = Date.now) {
    this.#allow = new AddressList(allow);
    this.#users = users ? new Map(users.map((u) => [u.name, u.hash])) : null;
    this.#failures = loginFailureThrottle(now);
  }

  get requiresLogin(): boolean {
    return this.#users !== null;
  }

  allows(address: string | undefined): boolean {
    return this.#allow.has(address);
  }

  /** Seconds the address must wait after too many failed logins, or 0. */
  loginRetryAfter(address: string | undefined): number {
    return this.#failures.retryAfter(address);
  }

  /** The user name for a valid `Authorization: Basic` header, else null (a failure counted against the address). */
  async authenticate(header: string | undefined, address?: string): Promise<string | null> {
    if (!this.#users || !header?.startsWith('Basic ')) return null;
    const name = await this.#verify(header.slice(6).trim(), this.#users);
    if (name === null) this.#failures.failed(address);
    return name;
  }

  async #verify(credentials: string, users: Map<string, string>): Promise<string | null> {
    const decoded = Buffer.from(credentials, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return null;
    const name = decoded.slice(0, colon);
    const hash = users.get(name);
    if (!hash) {
      await bcrypt.compare(decoded.slice(colon + 1), await this.#dummy(users));
      return null;
    }
    const key = createHash('sha256').update(hash).update('\0').update(decoded).digest('base64');
    if (this.#verified.has(key)) return name;
    if (!(await bcrypt.compare(decoded.slice(colon + 1), hash))) return null;
    this.#verified.set(key, name);
    return name;
  }

  /** A hash of a random password at the highest cost among the users' hashes, made once when first needed. */
  #dummy(users: Map<string, string>): Promise<string> {
    const cost = Math.max(...[...users.values()].map((h) => Number(h.slice(4, 6))));
    this.#dummyHash ??= bcrypt.hash(randomBytes(16).toString('hex'), cost);
    return this.#dummyHash;
  }
}

/** Parses an htpasswd file; only bcrypt entries ($2a$, $2b$, $2y$) are accepted. Throws naming the bad line. */
export function parseHtpasswd(text: string): HtpasswdUser[] {
  const users: HtpasswdUser[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const trimmed = line.trim();
    if (!trimmed || trimmed.startsWith('#')) return;
    const colon = trimmed.indexOf(':');
    const name = trimmed.slice(0, colon);
    const hash = trimmed.slice(colon + 1);
    if (colon <= 0 || !/^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash)) {
      throw new Error(`line ${i + 1}: expected user:bcrypt-hash (create entries with htpasswd -B)`);
    }
    users.push({ name, hash });
  });
  return users;
}
