import { type ErrorKind, RegistryError } from '../http/errors.js';

/** Why a bundle is refused, as the import answers it (nothing of the bundle was added). */
export function bundleError(message: string, kind: ErrorKind = 'MANIFEST_INVALID'): RegistryError {
  return new RegistryError(kind, `bundle rejected: ${message}`);
}
