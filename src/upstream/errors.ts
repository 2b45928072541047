import { RegistryError } from '../http/errors.js';

type Reason = { kind: 'UPSTREAM_UNREACHABLE' | 'UPSTREAM_TIMEOUT'; reason: string; retryable: boolean };
const transient = (kind: Reason['kind'], reason: string): Reason => ({ kind, reason, retryable: true });
/** Certificate problems do not fix themselves between attempts: they fail at once. */
const tls = (reason: string): Reason => ({ kind: 'UPSTREAM_UNREACHABLE', reason, retryable: false });

const NETWORK_REASONS: Record<string, Reason> = {
  ECONNREFUSED: transient('UPSTREAM_UNREACHABLE', 'connection refused'),
  ECONNRESET: transient('UPSTREAM_UNREACHABLE', 'connection reset'),
  EPIPE: transient('UPSTREAM_UNREACHABLE', 'connection reset'),
  ENOTFOUND: transient('UPSTREAM_UNREACHABLE', 'host name not found (DNS)'),
  EAI_AGAIN: transient('UPSTREAM_UNREACHABLE', 'DNS lookup failed'),
  EHOSTUNREACH: transient('UPSTREAM_UNREACHABLE', 'host unreachable'),
  ENETUNREACH: transient('UPSTREAM_UNREACHABLE', 'network unreachable'),
  UND_ERR_SOCKET: transient('UPSTREAM_UNREACHABLE', 'connection closed unexpectedly'),
  UND_ERR_CLOSED: transient('UPSTREAM_UNREACHABLE', 'connection closed unexpectedly'),
  UND_ERR_CONNECT_TIMEOUT: transient('UPSTREAM_TIMEOUT', 'connect timed out'),
  UND_ERR_HEADERS_TIMEOUT: transient('UPSTREAM_TIMEOUT', 'no response headers in time'),
  UND_ERR_BODY_TIMEOUT: transient('UPSTREAM_TIMEOUT', 'response body stalled'),
  ETIMEDOUT: transient('UPSTREAM_TIMEOUT', 'timed out'),
  CERT_HAS_EXPIRED: tls('TLS certificate has expired'),
  CERT_NOT_YET_VALID: tls('TLS certificate is not yet valid'),
  DEPTH_ZERO_SELF_SIGNED_CERT: tls('TLS certificate is self-signed (set ca_file)'),
  SELF_SIGNED_CERT_IN_CHAIN: tls('TLS certificate not trusted: self-signed certificate in chain (set ca_file)'),
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: tls('TLS certificate not trusted (set ca_file)'),
  UNABLE_TO_GET_ISSUER_CERT: tls('TLS certificate not trusted: issuer unknown (set ca_file)'),
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: tls('TLS certificate not trusted: issuer unknown (set ca_file)'),
  CERT_UNTRUSTED: tls('TLS certificate not trusted (set ca_file)'),
  ERR_TLS_CERT_ALTNAME_INVALID: tls('TLS certificate does not match the host name'),
};

/** Finds the errno-like code in an error's cause chain (undici wraps them in TypeError('fetch failed')). */
export function networkErrorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    if ((e as Error).name === 'TimeoutError') return 'ETIMEDOUT';
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Whether an error thrown by fetch or by reading a body is a network failure worth retrying. */
export function isNetworkError(err: unknown): boolean {
  if (err instanceof RegistryError) return false;
  const code = networkErrorCode(err);
  if (code && code in NETWORK_REASONS) return NETWORK_REASONS[code]!.retryable;
  const msg = (err as Error)?.message ?? '';
  return msg === 'fetch failed' || msg === 'terminated' || code?.startsWith('UND_ERR') === true;
}

/** Whether a network failure is a timeout (connect, response headers, a stalled body) rather than a refusal or reset. */
export function isTimeout(err: unknown): boolean {
  const code = networkErrorCode(err);
  return code !== undefined && NETWORK_REASONS[code]?.kind === 'UPSTREAM_TIMEOUT';
}

/** A RegistryError for a failed network exchange; `where` names the upstream and host, never a URL query. */
export function networkError(where: string, what: string, err: unknown): RegistryError {
  const code = networkErrorCode(err);
  const known = code ? NETWORK_REASONS[code] : undefined;
  const reason = known?.reason ?? (code ? `network error ${code}` : 'network error');
  return new RegistryError(known?.kind ?? 'UPSTREAM_UNREACHABLE', `${where}: ${what} failed: ${reason}`, { cause: err });
}

/** Failures where the upstream could not be asked (as opposed to answering no): cached answers may stand in. */
const UNAVAILABLE_KINDS = new Set<string>([
  'UPSTREAM_UNREACHABLE',
  'UPSTREAM_TIMEOUT',
  'UPSTREAM_BAD_RESPONSE',
  'UPSTREAM_RATE_LIMITED',
  'UPSTREAM_AUTH_FAILED',
  'UPSTREAM_DOWN',
  'UPSTREAM_OFFLINE',
]);

export function upstreamUnavailable(err: unknown): err is RegistryError {
  return err instanceof RegistryError && UNAVAILABLE_KINDS.has(err.kind);
}
