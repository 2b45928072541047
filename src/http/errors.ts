/**
 * The one table of client-facing errors. Every failure the mirror reports to a client is a RegistryError whose
 * kind maps to an OCI error code and an HTTP status here; the error renders its own response.
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
  INVALID_REQUEST: { code: 'INVALID_REQUEST', status: 400, message: 'invalid request' },
  RANGE_INVALID: { code: 'RANGE_INVALID', status: 416, message: 'requested range not satisfiable' },
  UNSUPPORTED: { code: 'UNSUPPORTED', status: 405, message: 'the operation is unsupported: this mirror is read-only' },
  UNAUTHORIZED: { code: 'UNAUTHORIZED', status: 401, message: 'authentication required' },
  DENIED: { code: 'DENIED', status: 403, message: 'requested access to the resource is denied' },
  BODY_TOO_LARGE: { code: 'INVALID_REQUEST', status: 413, message: 'the request body is too large' },
  TOO_MANY_REQUESTS: { code: 'TOOMANYREQUESTS', status: 429, message: 'too many requests' },
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

  /** Any thrown value as a RegistryError: anything else is INTERNAL, and its message never reaches the client. */
  static from(err: unknown): RegistryError {
    return err instanceof RegistryError ? err : new RegistryError('INTERNAL', undefined, { cause: err });
  }

  get status(): number {
    return ERROR_TABLE[this.kind].status;
  }

  get code(): string {
    return ERROR_TABLE[this.kind].code;
  }

  /** The OCI error body: {"errors":[{code, message, detail?}]}. */
  get body(): string {
    const entry: Record<string, unknown> = { code: this.code, message: this.message };
    if (this.detail !== undefined) entry.detail = this.detail;
    return JSON.stringify({ errors: [entry] });
  }

  /** The response for this error, with extra headers; a HEAD response has the same status and headers, no body. */
  getResponse(opts: { head?: boolean; headers?: Record<string, string> } = {}): Response {
    const headers = { ...opts.headers, 'content-type': 'application/json; charset=utf-8', ...this.headers };
    return new Response(opts.head ? null : this.body, { status: this.status, headers });
  }
}
