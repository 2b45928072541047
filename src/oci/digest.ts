import { RegistryError } from '../http/errors.js';
import { truncate } from '../util/truncate.js';

/** The one sha256 digest pattern: `sha256:` and 64 lowercase hex digits. */
const SHA256_DIGEST = /^sha256:[a-f0-9]{64}$/;
/** The digest grammar of the OCI image spec, any algorithm. */
const ANY_DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export type Digest = `sha256:${string}`;

export function isDigest(value: unknown): value is Digest {
  return typeof value === 'string' && SHA256_DIGEST.test(value);
}

/** Only sha256 is accepted: it is what ACR and every mainstream client use, and what the store verifies. */
export function parseDigest(value: string): Digest {
  if (isDigest(value)) return value;
  const why = ANY_DIGEST.test(value) ? 'unsupported digest algorithm or length (want sha256:<64 hex>)' : 'malformed digest';
  throw new RegistryError('DIGEST_INVALID', `${why}: ${truncate(value)}`);
}
