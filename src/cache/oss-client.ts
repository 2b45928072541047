import OSS, { type OSSOptions } from 'ali-oss';
import { NO_OSS_OBSERVER } from '../observability/oss-metrics.js';
import type { OssStorageConfig } from '../config/storage.js';
import { OssCredentialsError, ossSigning, type OssSigning } from './oss-credentials.js';

/** Where the OSS store keeps its blobs, how it reaches the bucket and signs its requests (ali-oss settings). */
export type OssSettings = OssPlace & OssSigning;

export interface OssPlace {
  bucket: string;
  /** e.g. https://oss-cn-hangzhou-internal.aliyuncs.com; or region (+ internal). */
  endpoint?: string;
  region?: string;
  internal?: boolean;
  /** The endpoint is the bucket's own domain (also how a test server on localhost is reached). */
  cname?: boolean;
  timeoutMs: number;
}

/** How a client reaches the configured bucket and signs its requests. */
export function ossSettingsOf(oss: OssStorageConfig): OssSettings {
  const where = oss.endpoint ? { endpoint: oss.endpoint } : { region: oss.region!, internal: oss.internal };
  return { bucket: oss.bucket, ...where, timeoutMs: oss.timeout, ...ossSigning(oss.credentials) };
}

export function ossClient(s: OssSettings): OSS {
  return new OSS({
    bucket: s.bucket,
    ...signing(s),
    ...(s.endpoint ? { endpoint: s.endpoint, secure: s.endpoint.startsWith('https://') } : { region: s.region!, internal: s.internal ?? false, secure: true }),
    ...(s.cname ? { cname: true } : {}),
    timeout: s.timeoutMs,
    // ali-oss sends a request again after a connection failure (a kept-alive socket the server closed), not after a 5xx.
    retryMax: 2,
  });
}

/** storage.oss.prefix as the start of keys: "" stays "", anything else ends with one "/" and has no leading "/". */
export function bucketKeyPrefix(prefix: string): string {
  return prefix.replace(/^\/+/, '').replace(/([^/])$/, '$1/');
}

/**
 * Temporary keys: ali-oss calls refreshSTSToken before each request (interval 0) and signs with what it answers, so
 * every request carries the provider's current keys. The placeholders satisfy ali-oss's constructor and are replaced
 * before the first request is signed.
 */
function signing(s: OssSigning): Pick<OSSOptions, 'accessKeyId' | 'accessKeySecret' | 'stsToken' | 'refreshSTSToken' | 'refreshSTSTokenInterval'> {
  if (!('temporaryCredentials' in s)) return { accessKeyId: s.accessKeyId, accessKeySecret: s.accessKeySecret };
  const credentials = s.temporaryCredentials;
  return {
    accessKeyId: 'pending',
    accessKeySecret: 'pending',
    stsToken: 'pending',
    refreshSTSToken: async () => {
      const keys = await credentials.current();
      return { accessKeyId: keys.accessKeyId, accessKeySecret: keys.accessKeySecret, stsToken: keys.securityToken ?? '' };
    },
    refreshSTSTokenInterval: 0,
  };
}

/**
 * An OSS request that failed: the OSS error code (or the network error's), the HTTP status and the request id,
 * never the signed request (ali-oss keeps it on its error objects, which are therefore not kept here).
 */
export class OssStoreError extends Error {
  constructor(
    readonly operation: string,
    readonly bucket: string,
    readonly key: string,
    readonly code: string,
    readonly status: number,
    readonly requestId: string | undefined,
    readonly detail: string,
  ) {
    const where = key ? `${bucket}/${key}` : `bucket ${bucket}`;
    super(`OSS ${operation} ${where} failed: ${code}${status > 0 ? ` (HTTP ${status})` : ''}: ${detail}${requestId ? ` (request id ${requestId})` : ''}`);
    this.name = 'OssStoreError';
  }

  /** Worth another try: the service or the connection failed, not the request. */
  get transient(): boolean {
    return this.status >= 500 || this.status <= 0;
  }
}

/** Runs one ali-oss call, told to the observer; its failure becomes an OssStoreError. */
export async function ossCall<T>(operation: string, bucket: string, key: string, call: () => Promise<T>, observer = NO_OSS_OBSERVER): Promise<T> {
  const started = performance.now();
  try {
    const answer = await call();
    observer.request(operation, (performance.now() - started) / 1000);
    return answer;
  } catch (err) {
    const failure = toOssStoreError(operation, bucket, key, err);
    observer.request(operation, (performance.now() - started) / 1000, failure);
    throw failure;
  }
}

export function toOssStoreError(operation: string, bucket: string, key: string, err: unknown): OssStoreError {
  if (err instanceof OssStoreError) return err;
  if (err instanceof OssCredentialsError) return new OssStoreError(operation, bucket, key, 'CredentialsUnavailable', 0, undefined, err.message);
  const e = (err ?? {}) as { code?: unknown; status?: unknown; requestId?: unknown; name?: unknown; message?: unknown };
  const status = typeof e.status === 'number' ? e.status : -1;
  const message = typeof e.message === 'string' ? e.message : '';
  // A connection failure (status <= 0) is named by its errno (ECONNREFUSED...) rather than ali-oss's RequestError.
  const errno = status <= 0 ? /\b(E[A-Z]{3,})\b/.exec(message)?.[1] : undefined;
  const code = errno ?? (typeof e.code === 'string' && e.code ? e.code : typeof e.name === 'string' ? e.name : 'UnknownError');
  // ali-oss's messages for OSS errors are OSS's own text; for network errors the first sentence (no URL query).
  const detail = message ? message.split(/[,\n]/)[0]!.replace(/\?\S*/g, '') : 'request failed';
  return new OssStoreError(operation, bucket, key, code, status, typeof e.requestId === 'string' ? e.requestId : undefined, detail);
}

export function isNotFound(err: unknown): boolean {
  return err instanceof OssStoreError && err.status === 404;
}

export function isAlreadyExists(err: unknown): boolean {
  return err instanceof OssStoreError && err.code === 'FileAlreadyExists';
}

const RETRY_DELAYS_MS = [200, 1000];

/** Runs an idempotent OSS call again after a 5xx or a connection failure, a few times. */
export async function withRetries<T>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      const delay = RETRY_DELAYS_MS[attempt];
      if (!(err instanceof OssStoreError) || !err.transient || delay === undefined) throw err;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
