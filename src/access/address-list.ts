import { BlockList, isIP } from 'node:net';
import { LRUCache } from 'lru-cache';

/** A set of networks (CIDRs) and the question whether a client address is in one. IPv4-mapped IPv6 counts as IPv4. */
export class AddressList {
  readonly #networks = new BlockList();
  /** Decisions per address: a node pulls with many requests, and BlockList.check costs per call. */
  readonly #decided = new LRUCache<string, boolean>({ max: 10_000 });

  constructor(cidrs: string[]) {
    for (const cidr of cidrs) {
      const [address, bits] = cidr.split('/') as [string, string | undefined];
      const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
      this.#networks.addSubnet(address, Number(bits ?? (family === 'ipv6' ? 128 : 32)), family);
    }
  }

  has(address: string | undefined): boolean {
    if (!address) return false;
    let found = this.#decided.get(address);
    if (found === undefined) {
      const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
      found = v4 ? this.#networks.check(v4, 'ipv4') : this.#networks.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
      this.#decided.set(address, found);
    }
    return found;
  }
}

export const LOOPBACK_NETWORKS = ['127.0.0.0/8', '::1/128'];
const loopback = new AddressList(LOOPBACK_NETWORKS);

export const isLoopback = (address: string | undefined): boolean => loopback.has(address);
