import { createHash } from 'node:crypto';
import { RegistryError } from '../http/errors.js';
import { isManifestMediaType, MAX_MANIFEST_BYTES } from '../oci/media-types.js';
import { truncate } from '../util/truncate.js';
import { isNetworkError, networkError } from './errors.js';
import { RetryableError, parseRetryAfter } from './retry.js';
import type { UpstreamBody, UpstreamResponse } from './transport.js';

/** Where a request ended (see follow()): the answer, or (stopping at another origin) the redirect's target, not yet fetched. */
export type Arrival =
  | { response: UpstreamResponse; url: URL; redirected: boolean; location?: undefined }
  | { location: URL; response?: undefined; url?: undefined; redirected?: undefined };

/** A small answer read whole (tag list, referrers page), with its headers. */
export interface SmallAnswer {
  body: Buffer;
  headers: UpstreamResponse['headers'];
}


/** Drops an answer's body (keeping the connection when it is small). */
export async function discard(res: UpstreamResponse): Promise<void> {
  try {
    await res.body?.cancel();
  } catch {
    // the connection is gone already
  }
}

/** Reads a small answer (manifest, tag list, token) whole; `where` names the upstream in errors. */
export async function readCapped(res: UpstreamResponse, where: string, what: string): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? 0);
  if (declared > MAX_MANIFEST_BYTES) {
    await discard(res);
    throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${where}: ${what}: response of ${declared} bytes exceeds the ${MAX_MANIFEST_BYTES} byte limit`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of res.body ?? []) {
      total += chunk.byteLength;
      if (total > MAX_MANIFEST_BYTES) {
        await discard(res);
        throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${where}: ${what}: response exceeds the ${MAX_MANIFEST_BYTES} byte limit`);
      }
      chunks.push(Buffer.from(chunk));
    }
  } catch (err) {
    if (err instanceof RegistryError) throw err;
    if (isNetworkError(err)) throw new RetryableError(networkError(where, what, err));
    throw err;
  }
  return Buffer.concat(chunks);
}

/**
 * Returns 2xx and 404 responses (and the 416 of an empty blob); throws RetryableError for what may pass on a new attempt (network errors, 429,
 * 5xx, object storage refusing an expired link) and RegistryError for the rest.
 */
export async function checked(label: string, now: number, arrival: Arrival, what: string): Promise<UpstreamResponse> {
  if (!arrival.response) throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${label}: ${what} was redirected where no redirect was expected`);
  const { response, redirected, url } = arrival;
  const status = response.status;
  if ((status >= 200 && status < 300) || status === 404 || emptyBlobRange(response)) return response;
  const source = redirected ? `${label}, blob storage ${url.host}` : label;
  const retryAfter = parseRetryAfter(response.headers.get('retry-after'), now);
  await discard(response);
  if (status === 429) {
    const err = new RegistryError('UPSTREAM_RATE_LIMITED', `${source}: ${what} was rate limited (429)`, retryAfterHeader(retryAfter));
    throw new RetryableError(err, retryAfter);
  }
  if (status >= 500) {
    const err = new RegistryError('UPSTREAM_BAD_RESPONSE', `${source}: ${what} failed with ${status}`, retryAfterHeader(retryAfter));
    throw new RetryableError(err, status === 503 ? retryAfter : undefined);
  }
  if (linkRefused(arrival)) {
    // Object storage refuses expired or mangled signed links with 403; asking the registry again signs anew.
    throw new RetryableError(new RegistryError('UPSTREAM_BAD_RESPONSE', `${source}: ${what}: blob storage refused the signed link (${status})`));
  }
  if (status === 403) throw new RegistryError('DENIED', `${source} denied ${what} (403)`);
  throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${source}: ${what} answered unexpected status ${status}`);
}

export interface BlobAnswer {
  /** Byte offset in the blob at which body starts (the requested start, or 0 if Range was ignored). */
  start: number;
  /** Size of the whole blob, when the upstream said. */
  size: number | null;
  /** The upstream answered the Range (206); false when it sent the whole blob instead. */
  partial: boolean;
  body: UpstreamBody;
}

const EMPTY_BODY: UpstreamBody = {
  async *[Symbol.asyncIterator]() {},
  cancel: async () => {},
};

/** Reads a blob GET's status and range headers; the request asked for bytes from `start` (a Range, or none at 0). */
export async function blobAnswer(res: UpstreamResponse, start: number, label: string, what: string): Promise<BlobAnswer> {
  if (emptyBlobRange(res)) {
    await discard(res);
    return { start: 0, size: 0, partial: true, body: EMPTY_BODY };
  }
  if (!res.body) throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${label}: ${what} returned no body`);
  if (res.status === 206) {
    const answered = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
    if (!answered || Number(answered[1]) !== start) {
      await discard(res);
      throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${label}: ${what} answered a range other than the one asked for`);
    }
    return { start, size: answered[2] === '*' ? null : Number(answered[2]), partial: true, body: res.body };
  }
  const length = res.headers.get('content-length');
  return { start: 0, size: length === null ? null : Number(length), partial: false, body: res.body };
}

/** A Range asked of an empty blob: no byte of it exists, so storage answers 416 with a total of 0. */
export function emptyBlobRange(response: UpstreamResponse): boolean {
  return response.status === 416 && response.headers.get('content-range') === 'bytes */0';
}

/** Object storage refuses an expired or mangled signed link with 403 (or 400). */
export function linkRefused(arrival: Arrival): boolean {
  const status = arrival.response?.status;
  return arrival.redirected === true && (status === 403 || status === 400);
}

function retryAfterHeader(ms: number | undefined): { headers?: Record<string, string> } {
  return ms === undefined ? {} : { headers: { 'retry-after': String(Math.ceil(ms / 1000)) } };
}

/** Content types some registries send for any manifest: the body's mediaType field says more. */
const GENERIC_TYPES = new Set(['application/octet-stream', 'text/plain']);

/**
 * The media type of a manifest answer: Content-Type, else the mediaType field in the body. Refuses (not to be
 * cached) a type that is not a manifest type (isManifestMediaType) and a body that is not a JSON object.
 */
/** The Range header asking for bytes start..end (inclusive; to the end without one); none for the whole blob. */
export function rangeHeader(range: { start: number; end?: number }): Record<string, string> {
  if (range.end !== undefined) return { range: `bytes=${range.start}-${range.end}` };
  return range.start > 0 ? { range: `bytes=${range.start}-` } : {};
}

/** A manifest as answered: the sha256 of its bytes, its (checked) media type and size. */
export function manifestAnswer(res: UpstreamResponse, body: Buffer, where: string, what: string): { digest: string; mediaType: string; size: number; body: Buffer } {
  return { digest: `sha256:${createHash('sha256').update(body).digest('hex')}`, mediaType: manifestMediaType(res, body, where, what), size: body.length, body };
}

export function manifestMediaType(res: UpstreamResponse, body: Buffer, where: string, what: string): string {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    doc = undefined;
  }
  const header = headerMediaType(res);
  const field = typeof doc === 'object' && doc !== null ? (doc as { mediaType?: unknown }).mediaType : undefined;
  const type = header && !GENERIC_TYPES.has(header) ? header : typeof field === 'string' ? field : (header ?? 'application/octet-stream');
  if (!isManifestMediaType(type)) {
    throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${where}: ${what} answered media type ${truncate(type)}, which is not a manifest type; not cached`);
  }
  if (typeof doc !== 'object' || doc === null) throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${where}: ${what} answered a ${type} body that is not JSON; not cached`);
  return type;
}

/** A HEAD answer's manifest media type, or '' when it names none or another type (then the manifest is fetched). */
export function headMediaType(res: UpstreamResponse): string {
  const type = headerMediaType(res);
  return type && isManifestMediaType(type) ? type : '';
}

function headerMediaType(res: UpstreamResponse): string | undefined {
  return res.headers.get('content-type')?.split(';')[0]?.trim();
}

/** The tags of a tag list answer; UPSTREAM_BAD_RESPONSE when it is not one. */
export function parseTagList(body: Buffer, where: string, what: string): string[] {
  let tags: unknown;
  try {
    tags = (JSON.parse(body.toString('utf8')) as { tags?: unknown }).tags ?? [];
  } catch {
    throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${where}: ${what} returned invalid JSON`);
  }
  if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) {
    throw new RegistryError('UPSTREAM_BAD_RESPONSE', `${where}: ${what} returned a malformed tag list`);
  }
  return tags;
}
