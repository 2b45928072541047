export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

/** Sent upstream whatever the client asked for, so a registry never down-converts (e.g. to schema 1). */
export const DEFAULT_ACCEPT = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];

/** Media types from Accept headers (comma-separated, possibly repeated), without parameters. */
export function parseAccept(values: string[]): string[] {
  const out: string[] = [];
  for (const v of values) {
    for (const part of v.split(',')) {
      const type = part.split(';')[0]!.trim().toLowerCase();
      if (type && !out.includes(type)) out.push(type);
    }
  }
  return out;
}

/** The client's types first, then the defaults it did not list. */
export function upstreamAccept(client: string[]): string[] {
  const own = client.filter((t) => t !== '*/*');
  return [...own, ...DEFAULT_ACCEPT.filter((t) => !own.includes(t))];
}

/** Whether a manifest of mediaType may be served to a client that sent these Accept types. */
export function acceptable(mediaType: string, client: string[]): boolean {
  return client.length === 0 || client.includes('*/*') || client.includes(mediaType);
}
