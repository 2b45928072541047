import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { isIP } from 'node:net';

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;
export type LookupFunction = (hostname: string, options: LookupOptions, callback: LookupCallback) => void;

/**
 * Host name -> IP pins for one upstream ("registry.cn-hangzhou.aliyuncs.com" or "*.oss-cn-hangzhou-internal.aliyuncs.com"),
 * replacing /etc/hosts entries on every node. Only the address changes: TLS still uses and verifies the real name.
 * A wildcard matches one or more leading labels; an exact name beats a wildcard; the longest wildcard wins.
 */
export class HostPins {
  readonly #exact = new Map<string, string>();
  readonly #wildcards: [suffix: string, ip: string][] = [];

  constructor(pins: Record<string, string>) {
    for (const [host, ip] of Object.entries(pins)) {
      const h = host.toLowerCase();
      if (h.startsWith('*.')) this.#wildcards.push([h.slice(1), ip]);
      else this.#exact.set(h, ip);
    }
    this.#wildcards.sort((a, b) => b[0].length - a[0].length);
  }

  get size(): number {
    return this.#exact.size + this.#wildcards.length;
  }

  resolve(hostname: string): string | undefined {
    const h = hostname.toLowerCase().replace(/\.$/, '');
    return this.#exact.get(h) ?? this.#wildcards.find(([suffix]) => h.endsWith(suffix) && h.length > suffix.length)?.[1];
  }

  /** A net/tls `lookup` that answers pinned names and asks DNS for the rest. */
  lookup(): LookupFunction {
    return (hostname, options, callback) => {
      const ip = this.resolve(hostname);
      if (!ip) return void dnsLookup(hostname, options, callback as never);
      const family = isIP(ip);
      if (options.all) callback(null, [{ address: ip, family }]);
      else callback(null, ip, family);
    };
  }
}
