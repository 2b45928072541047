import { RegistryError } from '../http/errors.js';

// Grammar from the OCI distribution spec / distribution's reference package.
const NAME_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const NAME_RE = new RegExp(`^${NAME_COMPONENT}(?:/${NAME_COMPONENT})*$`);
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const SHA256_RE = /^sha256:[a-f0-9]{64}$/;
export const MAX_NAME_LENGTH = 255;

export type Digest = `sha256:${string}`;

export type Reference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: Digest };

export function parseName(name: string): string {
  if (name.length === 0 || name.length > MAX_NAME_LENGTH || !NAME_RE.test(name)) {
    throw new RegistryError('NAME_INVALID', `invalid repository name: ${truncate(name)}`);
  }
  return name;
}

/** Only sha256 is accepted: it is what ACR and every mainstream client use, and what the store verifies. */
export function parseDigest(value: string): Digest {
  if (SHA256_RE.test(value)) return value as Digest;
  const why = DIGEST_RE.test(value) ? 'unsupported digest algorithm or length (want sha256:<64 hex>)' : 'malformed digest';
  throw new RegistryError('DIGEST_INVALID', `${why}: ${truncate(value)}`);
}

export function parseReference(value: string): Reference {
  if (value.includes(':')) {
    try {
      return { kind: 'digest', digest: parseDigest(value) };
    } catch {
      throw new RegistryError('MANIFEST_INVALID', `invalid manifest digest: ${truncate(value)}`);
    }
  }
  if (!TAG_RE.test(value)) throw new RegistryError('MANIFEST_INVALID', `invalid tag: ${truncate(value)}`);
  return { kind: 'tag', tag: value };
}

export function referenceString(ref: Reference): string {
  return ref.kind === 'tag' ? ref.tag : ref.digest;
}

export type RegistryPath =
  | { kind: 'ping' }
  | { kind: 'manifest'; name: string; reference: Reference }
  | { kind: 'blob'; name: string; digest: Digest }
  | { kind: 'tags'; name: string }
  | { kind: 'catalog' };

/**
 * Parses the path of a /v2 request. Names may contain slashes, so the last `/manifests/`, `/blobs/` or
 * `/tags/list` decides. The name is not percent-decoded: nothing in the name grammar needs encoding, so an
 * encoded character (such as %2F) makes the name invalid. The reference is decoded (clients may send %3A).
 * Returns null for paths that are not part of the read API (e.g. blob uploads).
 */
export function parseRegistryPath(path: string): RegistryPath | null {
  if (path === '/v2' || path === '/v2/') return { kind: 'ping' };
  if (path === '/v2/_catalog') return { kind: 'catalog' };
  if (!path.startsWith('/v2/')) return null;
  const rest = path.slice(4);
  let m = /^(.*)\/manifests\/([^/]*)$/s.exec(rest);
  if (m) return { kind: 'manifest', name: parseName(m[1]!), reference: parseReference(decodeSegment(m[2]!, 'MANIFEST_INVALID')) };
  m = /^(.*)\/blobs\/([^/]*)$/s.exec(rest);
  if (m) {
    if (m[2] === 'uploads') return null;
    return { kind: 'blob', name: parseName(m[1]!), digest: parseDigest(decodeSegment(m[2]!, 'DIGEST_INVALID')) };
  }
  m = /^(.*)\/tags\/list$/s.exec(rest);
  if (m) return { kind: 'tags', name: parseName(m[1]!) };
  return null;
}

function decodeSegment(segment: string, kind: 'MANIFEST_INVALID' | 'DIGEST_INVALID'): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new RegistryError(kind, 'malformed percent-encoding in path');
  }
}

function truncate(s: string): string {
  return s.length > 80 ? `${s.slice(0, 80)}...(${s.length} chars)` : s;
}
