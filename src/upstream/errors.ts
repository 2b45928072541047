import { RegistryError } from '../http/errors.js';

const NETWORK_REASONS: Record<string, { kind: 'UPSTREAM_UNREACHABLE' | 'UPSTREAM_TIMEOUT'; reason: string }> = {
  ECONNREFUSED: { kind: 'UPSTREAM_UNREACHABLE', reason: 'connection refused' },
  ECONNRESET: { kind: 'UPSTREAM_UNREACHABLE', reason: 'connection reset' },
  EPIPE: { kind: 'UPSTREAM_UNREACHABLE', reason: 'connection reset' },
  ENOTFOUND: { kind: 'UPSTREAM_UNREACHABLE', reason: 'host name not found (DNS)' },
  EAI_AGAIN: { kind: 'UPSTREAM_UNREACHABLE', reason: 'DNS lookup failed' },
  EHOSTUNREACH: { kind: 'UPSTREAM_UNREACHABLE', reason: 'host unreachable' },
  ENETUNREACH: { kind: 'UPSTREAM_UNREACHABLE', reason: 'network unreachable' },
  UND_ERR_SOCKET: { kind: 'UPSTREAM_UNREACHABLE', reason: 'connection closed unexpectedly' },
  UND_ERR_CLOSED: { kind: 'UPSTREAM_UNREACHABLE', reason: 'connection closed unexpectedly' },
  UND_ERR_CONNECT_TIMEOUT: { kind: 'UPSTREAM_TIMEOUT', reason: 'connect timed out' },
  UND_ERR_HEADERS_TIMEOUT: { kind: 'UPSTREAM_TIMEOUT', reason: 'no response headers in time' },
  UND_ERR_BODY_TIMEOUT: { kind: 'UPSTREAM_TIMEOUT', reason: 'response body stalled' },
  ETIMEDOUT: { kind: 'UPSTREAM_TIMEOUT', reason: 'timed out' },
  CERT_HAS_EXPIRED: { kind: 'UPSTREAM_UNREACHABLE', reason: 'TLS certificate has expired' },
  DEPTH_ZERO_SELF_SIGNED_CERT: { kind: 'UPSTREAM_UNREACHABLE', reason: 'TLS certificate is self-signed' },
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: { kind: 'UPSTREAM_UNREACHABLE', reason: 'TLS certificate not trusted' },
  ERR_TLS_CERT_ALTNAME_INVALID: { kind: 'UPSTREAM_UNREACHABLE', reason: 'TLS certificate does not match the host name' },
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
  if (code && code in NETWORK_REASONS) return true;
  const msg = (err as Error)?.message ?? '';
  return msg === 'fetch failed' || msg === 'terminated' || code?.startsWith('UND_ERR') === true;
}

/** A RegistryError for a failed network exchange; `where` names the upstream and host, never a URL query. */
export function networkError(where: string, what: string, err: unknown): RegistryError {
  const code = networkErrorCode(err);
  const known = code ? NETWORK_REASONS[code] : undefined;
  const reason = known?.reason ?? (code ? `network error ${code}` : 'network error');
  return new RegistryError(known?.kind ?? 'UPSTREAM_UNREACHABLE', `${where}: ${what} failed: ${reason}`, { cause: err });
}
