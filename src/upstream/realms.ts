import { RegistryError } from '../http/errors.js';

export interface RealmPolicySettings {
  url: string;
  aliases: string[];
  /** Host names, or patterns where a `*` label stands for exactly one label (`dockerauth.*.aliyuncs.com`). */
  token_realms: string[];
  insecure: boolean;
}

/** An Enterprise instance's public and VPC names (`<instance>[-vpc].<region>.cr.aliyuncs.com`): either means the instance. */
const ENTERPRISE_HOST = /^(.+?)(-vpc)?\.([a-z0-9-]+)\.cr\.aliyuncs\.com$/;

/**
 * Which token realms may receive an upstream's credentials, in the spirit of Distribution's `realmAllowed`: the
 * registry's own host, its aliases, the other name of an Enterprise instance, and the `token_realms` patterns.
 * Hosts are compared by name, ports ignored. A realm on another host than the registry's must use https unless the
 * upstream is `insecure`; a plain-http realm under an https registry is refused in any case.
 */
export class RealmPolicy {
  readonly #registry: URL;
  readonly #hosts = new Set<string>();
  readonly #patterns: string[][];
  readonly #insecure: boolean;

  constructor(settings: RealmPolicySettings) {
    this.#registry = new URL(settings.url);
    this.#insecure = settings.insecure;
    const own = normalize(this.#registry.hostname);
    this.#hosts.add(own);
    for (const alias of settings.aliases) this.#hosts.add(normalize(alias.replace(/:\d+$/, '')));
    const enterprise = ENTERPRISE_HOST.exec(own);
    if (enterprise) {
      const [, instance, , region] = enterprise;
      this.#hosts.add(`${instance}.${region}.cr.aliyuncs.com`).add(`${instance}-vpc.${region}.cr.aliyuncs.com`);
    }
    this.#patterns = settings.token_realms.map((p) => normalize(p).split('.'));
  }

  /** Throws UPSTREAM_AUTH_FAILED, naming the realm's host (never the credentials), unless `realm` may have them. */
  check(realm: URL, label: string): void {
    const host = normalize(realm.hostname);
    const where = `${label}, token service ${realm.host}`;
    const otherHost = host !== normalize(this.#registry.hostname);
    if (realm.protocol === 'http:' && (this.#registry.protocol === 'https:' || (otherHost && !this.#insecure))) {
      throw new RegistryError('UPSTREAM_AUTH_FAILED', `${where}: refusing to send credentials to a plain-HTTP token realm`);
    }
    if (!this.#allowed(host)) {
      throw new RegistryError(
        'UPSTREAM_AUTH_FAILED',
        `${where}: refusing to send credentials to token realm host ${host}: it is not the registry's host, one of its aliases or in token_realms`,
      );
    }
  }

  #allowed(host: string): boolean {
    if (this.#hosts.has(host)) return true;
    const labels = host.split('.');
    return this.#patterns.some((p) => p.length === labels.length && p.every((label, i) => label === '*' || label === labels[i]));
  }
}

function normalize(host: string): string {
  return host.toLowerCase().replace(/\.$/, '');
}
