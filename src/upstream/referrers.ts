import { RegistryError } from '../http/errors.js';
import type { Digest } from '../oci/digest.js';
import { FILTERS_APPLIED_HEADER, parseReferrers, type ReferrerDescriptor } from '../oci/referrers.js';
import type { RegistryClient } from './client.js';

/** Pages of one referrers answer followed at most; a longer chain is refused rather than followed forever. */
const MAX_PAGES = 100;
/** Referrers of one digest kept at most: the merged list is held in memory and stored as one row. */
export const MAX_REFERRERS = 10_000;

export interface UpstreamReferrers {
  /** Every page's descriptors, in the upstream's order. */
  manifests: ReferrerDescriptor[];
  /** The upstream applied the artifactType filter (OCI-Filters-Applied). */
  filtered: boolean;
}

/**
 * The referrers of a digest through the upstream's Referrers API, with artifactType passed on and every page
 * (Link rel="next") followed and merged; null when the upstream has no Referrers API (404).
 */
export async function fetchReferrers(client: RegistryClient, repo: string, digest: Digest, artifactType: string | undefined, signal?: AbortSignal): Promise<UpstreamReferrers | null> {
  const what = `referrers of ${repo}@${digest} on ${client.label}`;
  let path = `/v2/${repo}/referrers/${digest}${artifactType === undefined ? '' : `?${new URLSearchParams({ artifactType })}`}`;
  const manifests: ReferrerDescriptor[] = [];
  let filtered = false;
  for (let page = 0; page < MAX_PAGES; page++) {
    const answer = await client.getReferrersPage(repo, path, signal);
    if (!answer) {
      if (page === 0) return null;
      throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${what}: page ${page + 1} answered 404`);
    }
    const listed = parseReferrers(answer.body);
    if (!listed) throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${what}: the answer is not an image index`);
    manifests.push(...listed);
    if (manifests.length > MAX_REFERRERS) throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${what}: more than ${MAX_REFERRERS} referrers`);
    const filters = (answer.headers.get(FILTERS_APPLIED_HEADER) ?? '').split(',').map((f) => f.trim());
    if (page === 0) filtered = artifactType !== undefined && filters.includes('artifactType');
    const next = nextPage(answer.headers.get('link'), client.baseUrl, what);
    if (next === null) return { manifests, filtered };
    path = next;
  }
  throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${what}: more than ${MAX_PAGES} pages`);
}

/**
 * The path and query of the next page from a Link header (`<url>; rel="next"`), resolved against the registry.
 * A link to another origin is refused: the registry's credentials are never sent elsewhere.
 */
export function nextPage(link: string | null, baseUrl: string, what: string): string | null {
  const m = /<([^>]*)>\s*;\s*rel="?next"?/.exec(link ?? '');
  if (!m) return null;
  const base = new URL(baseUrl);
  let url: URL;
  try {
    url = new URL(m[1]!, base);
  } catch {
    throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${what}: malformed Link header`);
  }
  if (url.origin !== base.origin || !url.pathname.startsWith('/v2/')) {
    throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${what}: the next page is not on the registry (${url.origin})`);
  }
  return url.pathname + url.search;
}
