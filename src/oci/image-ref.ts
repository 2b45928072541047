import { parseDigest } from './digest.js';
import { parseName, parseReference, type Reference } from './reference.js';

export interface ImageRef {
  /** The repository name as a client would ask the mirror for it (routed like a client's). */
  name: string;
  reference: Reference;
}

/**
 * `name[:tag][@digest]` as docker pull takes it: the tag defaults to latest, a digest wins over a tag.
 * Throws RegistryError (NAME_INVALID, MANIFEST_INVALID, DIGEST_INVALID) naming what is wrong.
 */
export function parseImageRef(value: string): ImageRef {
  const trimmed = value.trim();
  const at = trimmed.indexOf('@');
  let rest = at < 0 ? trimmed : trimmed.slice(0, at);
  let tag = 'latest';
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  const name = parseName(rest);
  if (at >= 0) return { name, reference: { kind: 'digest', digest: parseDigest(trimmed.slice(at + 1)) } };
  return { name, reference: parseReference(tag) };
}
