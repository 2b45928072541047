export type Challenge =
  | { scheme: 'bearer'; realm: string; service?: string; scope?: string }
  | { scheme: 'basic'; realm?: string };

/**
 * Parses a WWW-Authenticate header (RFC 7235 auth-params, quoted or token values, several challenges
 * separated by commas) and returns the first Bearer or Basic challenge, preferring Bearer.
 */
export function parseChallenge(header: string | null): Challenge | null {
  if (!header) return null;
  const challenges = splitChallenges(header);
  const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
  if (bearer) {
    const { realm, service, scope } = bearer.params;
    return { scheme: 'bearer', realm: realm!, ...(service ? { service } : {}), ...(scope ? { scope } : {}) };
  }
  const basic = challenges.find((c) => c.scheme === 'basic');
  if (basic) return { scheme: 'basic', ...(basic.params.realm ? { realm: basic.params.realm } : {}) };
  return null;
}

function splitChallenges(header: string): { scheme: string; params: Record<string, string> }[] {
  const out: { scheme: string; params: Record<string, string> }[] = [];
  let i = 0;
  const n = header.length;
  const skipWs = () => {
    while (i < n && /[\s,]/.test(header[i]!)) i++;
  };
  while (i < n) {
    skipWs();
    const schemeMatch = /^[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*/.exec(header.slice(i));
    if (!schemeMatch) break;
    const current = { scheme: schemeMatch[0].toLowerCase(), params: {} as Record<string, string> };
    out.push(current);
    i += schemeMatch[0].length;
    for (;;) {
      skipWs();
      const param = /^([A-Za-z0-9!#$%&'*+.^_`|~-]+)\s*=\s*/.exec(header.slice(i));
      if (!param) break;
      i += param[0].length;
      let value = '';
      if (header[i] === '"') {
        i++;
        while (i < n && header[i] !== '"') {
          if (header[i] === '\\' && i + 1 < n) i++;
          value += header[i];
          i++;
        }
        i++;
      } else {
        const tok = /^[^\s,]*/.exec(header.slice(i))![0];
        value = tok;
        i += tok.length;
      }
      current.params[param[1]!.toLowerCase()] = value;
    }
  }
  return out;
}
