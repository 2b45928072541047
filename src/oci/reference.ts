import { RegistryError } from '../http/errors.js';
import { type Digest, parseDigest } from './digest.js';
import { truncate } from '../util/truncate.js';

// Grammar from the OCI distribution spec / distribution's reference package.
const NAME_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const NAME_RE = new RegExp(`^${NAME_COMPONENT}(?:/${NAME_COMPONENT})*$`);
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
export const MAX_NAME_LENGTH = 255;

export type Reference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: Digest };

export function parseName(name: string): string {
  if (name.length === 0 || name.length > MAX_NAME_LENGTH || !NAME_RE.test(name)) {
    throw new RegistryError('NAME_INVALID', `invalid repository name: ${truncate(name)}`);
  }
  return name;
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
