import { RegistryError } from '../http/errors.js';

/**
 * Maps the repository a client asks for to an upstream and the repository name there. Pure: no I/O.
 *
 * In order:
 *  1. A first path component that is a configured upstream host (or alias) selects that upstream; the rest of
 *     the name passes unchanged: `registry.cn-hangzhou.aliyuncs.com/ns/app` -> upstream of that host, `ns/app`.
 *  2. containerd's `?ns=<registry host>` naming a configured host selects that upstream; the name passes
 *     unchanged. An `ns` naming Docker Hub falls through to the prefix routes (Hub names are what they map);
 *     any other unknown `ns` matches nothing, so one registry's names are never served from another.
 *  3. `[[routes]]` by longest prefix of whole path components ("library" matches "library/nginx", not
 *     "libraryx/nginx"; "" matches every name), with an optional rewrite of the matched prefix.
 */
export interface RouteRule {
  prefix: string;
  upstream: string;
  /** Replaces the matched prefix; "" strips it. Absent: the name is passed through unchanged. */
  rewrite?: string;
}

export interface UpstreamHosts {
  upstream: string;
  /** Lower-case host names (with :port when not the default) that identify this upstream. */
  hosts: string[];
}

export interface RouteRequest {
  name: string;
  /** containerd's ns query parameter: the registry host the client meant. */
  ns?: string;
}

export interface ResolvedRoute {
  upstream: string;
  remoteName: string;
  via: 'path-host' | 'ns' | 'prefix';
}

const DOCKER_HUB = new Set(['docker.io', 'registry-1.docker.io', 'index.docker.io']);

export class RouteTable {
  readonly #rules: RouteRule[];
  readonly #hosts = new Map<string, string>();

  constructor(rules: RouteRule[], upstreams: UpstreamHosts[] = []) {
    this.#rules = [...rules].sort((a, b) => b.prefix.length - a.prefix.length);
    for (const u of upstreams) for (const h of u.hosts) this.#hosts.set(h.toLowerCase(), u.upstream);
  }

  resolve(req: RouteRequest): ResolvedRoute | null {
    const slash = req.name.indexOf('/');
    if (slash > 0) {
      const upstream = this.#hosts.get(req.name.slice(0, slash));
      if (upstream) return { upstream, remoteName: req.name.slice(slash + 1), via: 'path-host' };
    }
    if (req.ns) {
      const ns = req.ns.toLowerCase();
      const upstream = this.#hosts.get(ns);
      if (upstream) return { upstream, remoteName: req.name, via: 'ns' };
      if (!DOCKER_HUB.has(ns)) return null;
    }
    for (const rule of this.#rules) {
      const rest = matchPrefix(rule.prefix, req.name);
      if (rest === null) continue;
      const remoteName = rule.rewrite === undefined ? req.name : joinName(rule.rewrite, rest);
      if (remoteName === '') continue;
      return { upstream: rule.upstream, remoteName, via: 'prefix' };
    }
    return null;
  }

  /** The route for a client's repository; throws NAME_UNKNOWN saying what to configure when none matches. */
  require(name: string, ns?: string): ResolvedRoute {
    const resolved = this.resolve({ name, ...(ns ? { ns } : {}) });
    if (resolved) return resolved;
    const detail = ns ? ` for registry ${ns} (add it to an upstream's aliases, or route it)` : ': add a [[routes]] entry for it';
    throw new RegistryError('NAME_UNKNOWN', `no route matches repository ${name}${detail}`);
  }
}

/** The remainder of name after prefix (without the joining slash), or null if prefix does not match. */
function matchPrefix(prefix: string, name: string): string | null {
  if (prefix === '') return name;
  if (name === prefix) return '';
  return name.startsWith(`${prefix}/`) ? name.slice(prefix.length + 1) : null;
}

function joinName(prefix: string, rest: string): string {
  if (prefix === '') return rest;
  return rest === '' ? prefix : `${prefix}/${rest}`;
}
