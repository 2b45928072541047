import type { Context } from 'hono';
import { RegistryError } from '../http/errors.js';
import type { Env } from '../http/middleware.js';
import { requestHeader } from '../http/middleware.js';
import { parseRange } from '../http/range.js';
import { REGISTRY_HEADERS } from '../http/respond.js';
import { bufferedResponse, streamResponse } from '../http/stream-response.js';
import type { BlobBody } from '../proxy/blob-service.js';
import type { ServedManifest } from '../proxy/manifest-service.js';

/** The headers every blob answer carries (GET and HEAD). */
export function blobHeaders(digest: string): Record<string, string> {
  return { ...REGISTRY_HEADERS, 'docker-content-digest': digest, etag: `"${digest}"`, 'accept-ranges': 'bytes', 'cache-control': 'max-age=31536000' };
}

/** A blob GET's answer: the whole blob (200) or the Range asked for (206; 416 when it cannot be satisfied). */
export function blobResponse(c: Context<Env>, digest: string, blob: BlobBody, onServed: (bytes: number) => void): Response {
  const range = blob.size === null ? null : parseRange(requestHeader(c, 'range'), blob.size);
  if (range === 'unsatisfiable') {
    blob.release();
    throw new RegistryError('RANGE_INVALID', `range not satisfiable for a blob of ${blob.size} bytes`, { headers: { 'content-range': `bytes */${blob.size}` } });
  }
  const headers: Record<string, string> = { ...blobHeaders(digest), 'content-type': 'application/octet-stream', 'x-cache': blob.outcome };
  if (range) {
    headers['content-range'] = `bytes ${range.start}-${range.end}/${blob.size}`;
    headers['content-length'] = String(range.end - range.start + 1);
  } else if (blob.size !== null) {
    headers['content-length'] = String(blob.size);
  }
  return streamResponse(c, range ? 206 : 200, headers, blob, range ?? undefined, onServed);
}

/** A manifest's answer (no body for HEAD). */
export function manifestResponse(c: Context<Env>, m: ServedManifest, head: boolean): Response {
  const headers = {
    ...REGISTRY_HEADERS,
    'content-type': m.mediaType,
    'content-length': String(m.size),
    'docker-content-digest': m.digest,
    etag: `"${m.digest}"`,
    'x-cache': m.outcome,
  };
  return bufferedResponse(c, 200, headers, head ? null : m.body);
}
