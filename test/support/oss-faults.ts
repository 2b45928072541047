/** Fault switches and request counts of the OSS test server. */

export type OssOperation =
  | 'GetBucketInfo' | 'PutObject' | 'GetObject' | 'HeadObject' | 'DeleteObject' | 'ListObjects' | 'ListMultipartUploads'
  | 'InitiateMultipartUpload' | 'UploadPart' | 'CompleteMultipartUpload' | 'AbortMultipartUpload' | 'ListParts';

export interface OssRequestInfo {
  operation: OssOperation;
  bucket: string;
  key: string;
  partNumber?: number;
  uploadId?: string;
}

export type OssRequestMatcher = (request: OssRequestInfo) => boolean;

interface Rule {
  remaining: number;
  matches: OssRequestMatcher;
}

const everything: OssRequestMatcher = () => true;

function take<R extends Rule>(rules: R[], request: OssRequestInfo): R | undefined {
  const rule = rules.find((r) => r.remaining > 0 && r.matches(request));
  if (rule) rule.remaining--;
  return rule;
}

export class OssFaults {
  readonly #counts = new Map<OssOperation, number>();
  readonly #errors: Rule[] = [];
  readonly #resets: (Rule & { afterBytes: number })[] = [];
  readonly #stalls: Rule[] = [];
  /** Bytes per second for object bodies sent by GetObject; null is full speed. */
  bytesPerSecond: number | null = null;

  /** The next `times` authenticated requests that match answer 500 InternalError instead of being carried out. */
  failNext(times: number, matches: OssRequestMatcher = everything): void {
    this.#errors.push({ remaining: times, matches });
  }

  /** The next `times` matching GetObject answers send `afterBytes` body bytes, then reset the connection. */
  resetGetAfter(afterBytes: number, times = 1, matches: OssRequestMatcher = everything): void {
    this.#resets.push({ remaining: times, matches, afterBytes });
  }

  /** The next `times` matching requests get no answer until the client gives up (or the server closes). */
  stallNext(times: number, matches: OssRequestMatcher = everything): void {
    this.#stalls.push({ remaining: times, matches });
  }

  /** The operations of the requests that got no answer so far, in order. */
  readonly stalled: OssOperation[] = [];

  /** True when the request must get no answer. */
  stalls(request: OssRequestInfo): boolean {
    const stalls = take(this.#stalls, request) !== undefined;
    if (stalls) this.stalled.push(request.operation);
    return stalls;
  }

  count(operation: OssOperation): number {
    return this.#counts.get(operation) ?? 0;
  }

  /** Counts the request; true when it must fail with a 5xx. */
  admit(request: OssRequestInfo): boolean {
    this.#counts.set(request.operation, this.count(request.operation) + 1);
    return take(this.#errors, request) !== undefined;
  }

  /** How many body bytes a GetObject may send before its connection is reset, if a reset is armed for it. */
  resetAfter(request: OssRequestInfo): number | undefined {
    return take(this.#resets, request)?.afterBytes;
  }
}
