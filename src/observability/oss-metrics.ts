import type { Metrics } from './metrics.js';

/** What the OSS client code reports: each request (every attempt of a retried one) and the body bytes moved. */
export interface OssObserver {
  /** A request finished after `seconds` (a streamed GET: at its headers); `failure` unless it succeeded. */
  request(operation: string, seconds: number, failure?: { code: string; status: number }): void;
  bytes(direction: 'sent' | 'received', n: number): void;
}

/**
 * Into the acr_mirror_oss_* metrics. A 404 is counted as not_found rather than an error: a HEAD of a blob not in the
 * bucket is an ordinary miss. Operations and OSS error codes are bounded sets; keys and request ids never appear.
 */
export function ossObserver(metrics: Metrics): OssObserver {
  return {
    request(operation, seconds, failure) {
      const result = !failure ? 'ok' : failure.status === 404 ? 'not_found' : 'error';
      metrics.ossRequests.inc({ operation, result });
      metrics.ossRequestDuration.observe({ operation }, seconds);
      if (result === 'error') metrics.ossErrors.inc({ operation, code: failure!.code });
    },
    bytes(direction, n) {
      metrics.ossBytes.inc({ direction }, n);
    },
  };
}

/** For tools and tests that do not export metrics. */
export const NO_OSS_OBSERVER: OssObserver = { request() {}, bytes() {} };
