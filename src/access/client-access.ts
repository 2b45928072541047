import { createHash } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import bcrypt from 'bcryptjs';
import { LRUCache } from 'lru-cache';

export interface HtpasswdUser {
  name: string;
  hash: string;
}

/**
 * Who may use the mirror: client addresses by CIDR, and optionally HTTP Basic users with bcrypt hashes
 * (htpasswd -B). Verified credentials are remembered (by a hash, never in clear) so bcrypt runs once per
 * user and password, not on every request of a pull.
 */
export class ClientAccess {
  readonly #allow = new BlockList();
  readonly #users: Map<string, string> | null;
  readonly #verified = new LRUCache<string, string>({ max: 1000, ttl: 10 * 60_000 });
  /** Decisions per client address: a node pulls with many requests, and BlockList.check costs per call. */
  readonly #decided = new LRUCache<string, boolean>({ max: 10_000 });

  constructor(allow: string[], users: HtpasswdUser[] | null) {
    for (const cidr of allow) {
      const [address, bits] = cidr.split('/') as [string, string | undefined];
      const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
      this.#allow.addSubnet(address, Number(bits ?? (family === 'ipv6' ? 128 : 32)), family);
    }
    this.#users = users ? new Map(users.map((u) => [u.name, u.hash])) : null;
  }

  get requiresLogin(): boolean {
    return this.#users !== null;
  }

  allows(address: string | undefined): boolean {
    if (!address) return false;
    let allowed = this.#decided.get(address);
    if (allowed === undefined) {
      const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
      allowed = v4 ? this.#allow.check(v4, 'ipv4') : this.#allow.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
      this.#decided.set(address, allowed);
    }
    return allowed;
  }

  /** The user name for a valid `Authorization: Basic` header, else null. */
  async authenticate(header: string | undefined): Promise<string | null> {
    if (!this.#users || !header?.startsWith('Basic ')) return null;
    const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return null;
    const name = decoded.slice(0, colon);
    const hash = this.#users.get(name);
    if (!hash) return null;
    const key = createHash('sha256').update(hash).update('\0').update(decoded).digest('base64');
    if (this.#verified.has(key)) return name;
    if (!(await bcrypt.compare(decoded.slice(colon + 1), hash))) return null;
    this.#verified.set(key, name);
    return name;
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
