import { RegistryError } from '../http/errors.js';
import { type Digest, parseDigest } from '../oci/digest.js';
import { parseName, parseReference, type Reference } from '../oci/reference.js';

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
  if (m) return { kind: 'manifest', name: parseName(m[1]!), reference: manifestReference(m[2]!) };
  m = /^(.*)\/blobs\/([^/]*)$/s.exec(rest);
  if (m) {
    if (m[2] === 'uploads') return null;
    return { kind: 'blob', name: parseName(m[1]!), digest: parseDigest(decodeSegment(m[2]!, 'DIGEST_INVALID')) };
  }
  m = /^(.*)\/tags\/list$/s.exec(rest);
  if (m) return { kind: 'tags', name: parseName(m[1]!) };
  return null;
}

/**
 * A reference that can name no manifest is an unknown manifest (404), as the distribution-spec's conformance
 * tests require (they ask for `.INVALID_MANIFEST_NAME`); it never reaches an upstream.
 */
function manifestReference(segment: string): Reference {
  try {
    return parseReference(decodeSegment(segment, 'MANIFEST_INVALID'));
  } catch (err) {
    const why = (err as RegistryError).message;
    throw new RegistryError('MANIFEST_UNKNOWN', `manifest unknown: the reference is neither a valid tag nor a sha256 digest (${why})`);
  }
}

function decodeSegment(segment: string, kind: 'MANIFEST_INVALID' | 'DIGEST_INVALID'): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new RegistryError(kind, 'malformed percent-encoding in path');
  }
}
