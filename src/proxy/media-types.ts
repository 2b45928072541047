import { LRUCache } from 'lru-cache';
import { DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST } from '../oci/media-types.js';

/** Sent upstream whatever the client asked for, so a registry never down-converts (e.g. to schema 1). */
export const DEFAULT_ACCEPT = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];

const NO_TYPES: readonly string[] = Object.freeze([]);
/** Clients send the same few Accept headers over and over: each is parsed once. */
const parsedAccept = new LRUCache<string, readonly string[]>({ max: 256 });

/**
 * Media types of an Accept header, without parameters. Node joins repeated Accept headers with ", ", so one
 * string holds them all.
 */
export function acceptedTypes(header: string | undefined): readonly string[] {
  if (!header) return NO_TYPES;
  let types = parsedAccept.get(header);
  if (!types) {
    const out: string[] = [];
    for (const part of header.split(',')) {
      const type = part.split(';')[0]!.trim().toLowerCase();
      if (type && !out.includes(type)) out.push(type);
    }
    types = Object.freeze(out);
    parsedAccept.set(header, types);
  }
  return types;
}

/** The client's types first, then the defaults it did not list. */
export function upstreamAccept(client: readonly string[]): string[] {
  const own = client.filter((t) => t !== '*/*');
  return [...own, ...DEFAULT_ACCEPT.filter((t) => !own.includes(t))];
}

/** Whether a manifest of mediaType may be served to a client that sent these Accept types. */
export function acceptable(mediaType: string, client: readonly string[]): boolean {
  return client.length === 0 || client.includes('*/*') || client.includes(mediaType);
}
