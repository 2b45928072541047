/**
 * The one table of client-facing errors. Every failure the mirror reports to a registry client is a
 * RegistryError whose kind maps to an OCI error code and an HTTP status here, and is rendered by renderError.
 */
export const ERROR_TABLE = {
  NAME_INVALID: { code: 'NAME_INVALID', status: 400, message: 'invalid repository name' },
  MANIFEST_INVALID: { code: 'MANIFEST_INVALID', status: 400, message: 'invalid manifest reference' },
  DIGEST_INVALID: { code: 'DIGEST_INVALID', status: 400, message: 'invalid digest' },
  PAGINATION_INVALID: { code: 'PAGINATION_NUMBER_INVALID', status: 400, message: 'invalid pagination parameters' },
  NAME_UNKNOWN: { code: 'NAME_UNKNOWN', status: 404, message: 'repository name not known to registry' },
  MANIFEST_UNKNOWN: { code: 'MANIFEST_UNKNOWN', status: 404, message: 'manifest unknown' },
  BLOB_UNKNOWN: { code: 'BLOB_UNKNOWN', status: 404, message: 'blob unknown to registry' },
  NOT_FOUND: { code: 'NOT_FOUND', status: 404, message: 'not found' },
  RANGE_INVALID: { code: 'RANGE_INVALID', status: 416, message: 'requested range not satisfiable' },
  UNSUPPORTED: { code: 'UNSUPPORTED', status: 405, message: 'the operation is unsupported: this mirror is read-only' },
  UNAUTHORIZED: { code: 'UNAUTHORIZED', status: 401, message: 'authentication required' },
  DENIED: { code: 'DENIED', status: 403, message: 'requested access to the resource is denied' },
  TOO_MANY_FILLS: { code: 'TOOMANYREQUESTS', status: 429, message: 'too many blob downloads in progress' },
  UPSTREAM_AUTH_FAILED: { code: 'UNAVAILABLE', status: 502, message: 'upstream rejected the mirror credentials' },
  UPSTREAM_BAD_RESPONSE: { code: 'UNAVAILABLE', status: 502, message: 'upstream answered with an error' },
  UPSTREAM_UNREACHABLE: { code: 'UNAVAILABLE', status: 503, message: 'upstream unreachable' },
  UPSTREAM_RATE_LIMITED: { code: 'UNAVAILABLE', status: 503, message: 'upstream is rate limiting the mirror' },
  UPSTREAM_TIMEOUT: { code: 'UNAVAILABLE', status: 504, message: 'upstream timed out' },
  UPSTREAM_DOWN: { code: 'UNAVAILABLE', status: 503, message: 'upstream is marked down after repeated failures' },
  UPSTREAM_OFFLINE: { code: 'UNAVAILABLE', status: 503, message: 'upstream is offline: only cached content is served' },
  INTERNAL: { code: 'UNKNOWN', status: 500, message: 'internal error' },
} as const;

export type ErrorKind = keyof typeof ERROR_TABLE;

export class RegistryError extends Error {
  readonly kind: ErrorKind;
  readonly detail: unknown;
  /** Extra response headers, e.g. Retry-After or Content-Range. */
  readonly headers: Record<string, string>;

  constructor(kind: ErrorKind, message?: string, opts: { detail?: unknown; headers?: Record<string, string>; cause?: unknown } = {}) {
    super(message ?? ERROR_TABLE[kind].message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'RegistryError';
    this.kind = kind;
    this.detail = opts.detail;
    this.headers = opts.headers ?? {};
  }

  get status(): number {
    return ERROR_TABLE[this.kind].status;
  }

  get code(): string {
    return ERROR_TABLE[this.kind].code;
  }
}

export interface RenderedError {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Renders any thrown value as an OCI error body. Unknown errors never expose their message to the client. */
export function renderError(err: unknown): RenderedError {
  const e = err instanceof RegistryError ? err : new RegistryError('INTERNAL');
  const entry: Record<string, unknown> = { code: e.code, message: e.message };
  if (e.detail !== undefined) entry.detail = e.detail;
  return {
    status: e.status,
    headers: { 'content-type': 'application/json; charset=utf-8', ...e.headers },
    body: JSON.stringify({ errors: [entry] }),
  };
}
