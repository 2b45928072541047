/**
 * Maps a client's repository name to an upstream and the repository name on that upstream.
 * Pure: no I/O, table-tested. Prefixes match whole path components ("library" matches "library/nginx",
 * not "libraryx/nginx"); the longest matching prefix wins; "" matches every name.
 */
export interface RouteRule {
  prefix: string;
  upstream: string;
  /** Replaces the matched prefix; "" strips it. Absent: the name is passed through unchanged. */
  rewrite?: string;
}

export interface ResolvedRoute {
  upstream: string;
  remoteName: string;
  rule: RouteRule;
}

export class RouteTable {
  readonly #rules: RouteRule[];

  constructor(rules: RouteRule[]) {
    this.#rules = [...rules].sort((a, b) => b.prefix.length - a.prefix.length);
  }

  resolve(name: string): ResolvedRoute | null {
    for (const rule of this.#rules) {
      const rest = matchPrefix(rule.prefix, name);
      if (rest === null) continue;
      const remoteName = rule.rewrite === undefined ? name : joinName(rule.rewrite, rest);
      if (remoteName === '') continue;
      return { upstream: rule.upstream, remoteName, rule };
    }
    return null;
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
