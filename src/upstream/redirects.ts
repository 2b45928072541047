import { LRUCache } from 'lru-cache';
import { RegistryError } from '../http/errors.js';
import { type Arrival, discard } from './answers.js';
import { isNetworkError, networkError } from './errors.js';
import { RetryableError } from './retry.js';
import type { Fetch, FetchInit, UpstreamResponse } from './transport.js';

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export interface RedirectPolicy {
  maxRedirects: number;
  /** Allows a redirect from https to plain http. */
  insecure: boolean;
  /** How messages name the upstream. */
  label: string;
}


/**
 * Sends a request and follows its redirects itself (the transport never does): the Authorization header never
 * goes to another origin, https never falls back to plain http unless the upstream is insecure, and at most
 * maxRedirects hops are taken. `to`: 'registry' follows every hop; 'registry-until-storage' returns the first redirect
 * to another origin (a blob's signed object-storage link) instead of following it; 'storage' starts at such a
 * link. Network failures are RetryableErrors naming the host.
 */
export async function follow(
  fetch: Fetch,
  url: URL,
  what: string,
  init: FetchInit,
  policy: RedirectPolicy,
  to: 'registry' | 'registry-until-storage' | 'storage' = 'registry',
): Promise<Arrival> {
  let current = url;
  let headers = init.headers;
  for (let hop = 0; ; hop++) {
    const redirected = hop > 0 || to === 'storage';
    const response = await send(fetch, current, what, { ...init, headers }, redirected ? `${policy.label}, blob storage ${current.host}` : policy.label);
    if (!REDIRECTS.has(response.status)) return { response, url: current, redirected };
    const location = response.headers.get('location');
    await discard(response);
    const next = nextHop(location, current, hop, what, policy);
    if (next.origin !== current.origin) {
      if (to === 'registry-until-storage') return { location: next };
      headers = withoutAuthorization(headers);
    }
    current = next;
  }
}

async function send(fetch: Fetch, url: URL, what: string, init: FetchInit, where: string): Promise<UpstreamResponse> {
  try {
    return await fetch(url.href, init);
  } catch (err) {
    if (init.signal?.aborted) throw networkError(where, what, init.signal.reason ?? err);
    if (!isNetworkError(err)) throw networkError(where, what, err);
    throw new RetryableError(networkError(where, what, err));
  }
}

function nextHop(location: string | null, current: URL, hop: number, what: string, policy: RedirectPolicy): URL {
  const { label, maxRedirects } = policy;
  if (!location) throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${label}: ${what} redirected without a Location`);
  if (hop >= maxRedirects) throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${label}: ${what} redirected more than ${maxRedirects} times`);
  const next = new URL(location, current);
  if (next.protocol !== 'http:' && next.protocol !== 'https:') {
    throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${label}: ${what} redirected to an unsupported scheme ${next.protocol}`);
  }
  if (current.protocol === 'https:' && next.protocol === 'http:' && !policy.insecure) {
    throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${label}: ${what} redirected from https to plain http (${next.host}); refused unless insecure = true`);
  }
  return next;
}

export function withoutAuthorization(headers: Record<string, string>): Record<string, string> {
  const { authorization: _dropped, ...rest } = headers;
  return rest;
}

/** How many blobs' signed links are kept; each is a few hundred bytes. */
const MAX_LOCATIONS = 1000;
/** A link is not used this close to its expiry (clock skew; a slow first byte). */
const EXPIRY_MARGIN_MS = 10_000;

/**
 * The signed storage link of each recently fetched blob, kept in memory only (never persisted: it carries a
 * signature), so a resume or another range does not ask the registry again. A link is dropped when its `Expires`
 * is near or when storage refuses it.
 */
export class BlobLocations {
  readonly #links = new LRUCache<string, { url: URL; usableUntil: number }>({ max: MAX_LOCATIONS });

  constructor(private readonly now: () => number) {}

  get(digest: string): URL | undefined {
    const link = this.#links.get(digest);
    if (link && this.now() < link.usableUntil) return link.url;
    if (link) this.#links.delete(digest);
    return undefined;
  }

  set(digest: string, url: URL): void {
    this.#links.set(digest, { url, usableUntil: linkExpiry(url) - EXPIRY_MARGIN_MS });
  }

  delete(digest: string): void {
    this.#links.delete(digest);
  }
}

/** Epoch ms at which a signed link expires: OSS and S3 v2 `Expires`, S3 v4 `X-Amz-Date` + `X-Amz-Expires`; else never. */
export function linkExpiry(url: URL): number {
  const q = url.searchParams;
  const expires = q.get('Expires');
  if (expires && /^\d+$/.test(expires)) return Number(expires) * 1000;
  const date = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(q.get('X-Amz-Date') ?? '');
  const seconds = q.get('X-Amz-Expires');
  if (date && seconds && /^\d+$/.test(seconds)) {
    const [, y, mo, d, h, mi, s] = date.map(Number) as number[];
    return Date.UTC(y!, mo! - 1, d, h, mi, s) + Number(seconds) * 1000;
  }
  return Number.POSITIVE_INFINITY;
}
