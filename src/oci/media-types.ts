/** Manifest media types the mirror knows by name. */
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_ARTIFACT_MANIFEST = 'application/vnd.oci.artifact.manifest.v1+json';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
/** Docker schema 1, signed: an upstream still answers it to a client that asks for it. */
export const DOCKER_SCHEMA1_SIGNED = 'application/vnd.docker.distribution.manifest.v1+prettyjws';

/**
 * The only media types a manifest is cached or served under. Anything else (text/html, for one) would be
 * rendered by a browser opening the URL on the mirror's origin, where the admin session cookie works.
 */
const MANIFEST_TYPES: ReadonlySet<string> = new Set([OCI_INDEX, OCI_MANIFEST, OCI_ARTIFACT_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST, DOCKER_SCHEMA1_SIGNED]);

export function isManifestMediaType(mediaType: string): boolean {
  return MANIFEST_TYPES.has(mediaType);
}

/** The most bytes a manifest may have, from the upstream or a bundle (Distribution's own limit is 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
