import type { Logger } from 'pino';
import type { SourceAnswer } from '../cache/blob-download.js';
import type { ClusterConfig } from '../config/cluster.js';
import type { Metrics } from '../observability/metrics.js';
import { blobAnswer, discard, manifestAnswer, rangeHeader, readCapped } from '../upstream/answers.js';
import type { ManifestAnswer } from '../upstream/client.js';
import { isTimeout, networkErrorCode } from '../upstream/errors.js';
import { createTransport, type Transport, type UpstreamResponse } from '../upstream/transport.js';
import { ownerOf } from './rendezvous.js';

/** Where a forwarded miss is, on the owner: the upstream (by configured name) and its repository name. */
export interface ForwardTarget {
  upstream: string;
  repo: string;
}

export type ForwardKind = 'blob' | 'manifest';

/** Longest pause in a forwarded body before the transfer counts as broken (and is resumed from the upstream). */
const IDLE_TIMEOUT_MS = 60_000;
/** An unreachable owner is logged at most this often (each failure is counted in the metrics). */
const WARN_INTERVAL_MS = 60_000;
/**
 * After an owner failed to answer, misses of its digests go straight to the upstream this long: an owner that
 * hangs would otherwise cost every such miss forward_timeout, and a fill that starts from the upstream can be
 * segmented.
 */
export const OWNER_RETRY_MS = 10_000;

/** This replica's side of the cluster: who owns a digest, and asking the owner for a miss (one hop). */
export class ClusterPeers {
  readonly #transport: Transport;
  readonly #warnedAt = new Map<string, number>();
  readonly #failedAt = new Map<string, number>();

  constructor(
    private readonly config: ClusterConfig,
    private readonly deps: { log: Logger; metrics: Metrics; now: () => number },
  ) {
    const timeout = config.forward_timeout;
    this.#transport = createTransport({ connectTimeoutMs: timeout, responseTimeoutMs: timeout, idleTimeoutMs: IDLE_TIMEOUT_MS, proxy: '' });
  }

  /** The member that fetches digest from the upstream; the others forward its misses there. */
  ownerOf(digest: string): string {
    return ownerOf(digest, this.config.members);
  }

  /** The member a miss of digest is forwarded to now: null when this replica owns it or its owner just failed. */
  forwardTo(digest: string): string | null {
    const owner = this.ownerOf(digest);
    if (owner === this.config.self) return null;
    return this.deps.now() - (this.#failedAt.get(owner) ?? -Infinity) < OWNER_RETRY_MS ? null : owner;
  }

  /** A byte range of a blob from its owner, or null when the owner did not answer it (fetch it yourself). */
  async openBlob(owner: string, to: ForwardTarget, digest: string, range: { start: number; end?: number }, signal: AbortSignal): Promise<SourceAnswer | null> {
    const res = await this.#ask('blob', owner, forwardPath(to, 'blobs', digest), rangeHeader(range), signal);
    if (!res) return null;
    try {
      return await blobAnswer(res, range.start, owner, `forwarded GET blob ${digest}`);
    } catch (err) {
      this.#unreachable('blob', owner, 'status', (err as Error).message);
      return null;
    }
  }

  /** A manifest by digest from its owner, or null when the owner did not answer it (fetch it yourself). */
  async getManifest(owner: string, to: ForwardTarget, digest: string, accept: readonly string[]): Promise<ManifestAnswer | null> {
    const res = await this.#ask('manifest', owner, forwardPath(to, 'manifests', digest), { accept: accept.join(', ') });
    if (!res) return null;
    try {
      const what = `forwarded GET manifest ${digest}`;
      const answer = manifestAnswer(res, await readCapped(res, owner, what), owner, what);
      if (answer.digest !== digest) throw new Error(`the owner's manifest does not match ${digest} (got ${answer.digest})`);
      return answer;
    } catch (err) {
      this.#unreachable('manifest', owner, networkErrorCode(err) ? 'network' : 'status', (err as Error).message);
      return null;
    }
  }

  /** Counts a forwarded miss the owner took on (answered its first request). */
  answered(kind: ForwardKind): void {
    this.deps.metrics.clusterForwarded.inc({ kind });
  }

  close(): Promise<void> {
    return this.#transport.close();
  }

  /** GET path on owner with the cluster secret; a 2xx answer, or null (counted and logged) for anything else. */
  async #ask(kind: ForwardKind, owner: string, path: string, headers: Record<string, string>, signal?: AbortSignal): Promise<UpstreamResponse | null> {
    let res: UpstreamResponse;
    try {
      res = await this.#transport.fetch(`${owner}${path}`, {
        method: 'GET',
        headers: { ...headers, authorization: `Bearer ${this.config.secret.reveal()}` },
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      if (signal?.aborted) throw err;
      this.#unreachable(kind, owner, isTimeout(err) ? 'timeout' : 'network', networkErrorCode(err) ?? (err as Error).message);
      return null;
    }
    if (res.status >= 200 && res.status < 300) return res;
    await discard(res);
    // Not taken as the upstream's word: an owner still on a version without this endpoint answers 404 too.
    if (res.status === 404) this.deps.metrics.clusterOwnerUnreachable.inc({ kind, reason: 'not_found' });
    else this.#unreachable(kind, owner, 'status', `answered ${res.status}`);
    return null;
  }

  #unreachable(kind: ForwardKind, owner: string, reason: 'network' | 'timeout' | 'status', detail: string): void {
    this.deps.metrics.clusterOwnerUnreachable.inc({ kind, reason });
    const now = this.deps.now();
    this.#failedAt.set(owner, now);
    if (now - (this.#warnedAt.get(owner) ?? -Infinity) < WARN_INTERVAL_MS) return;
    this.#warnedAt.set(owner, now);
    this.deps.log.warn({ owner, kind, reason: detail, retryInMs: OWNER_RETRY_MS }, 'cluster owner did not answer a forwarded miss; fetching from the upstream instead');
  }
}

/** The owner's forwarding endpoint for a blob or manifest (see registry/cluster-api.ts). */
export function forwardPath(to: ForwardTarget, kind: 'blobs' | 'manifests', digest: string): string {
  return `/_cluster/v1/${to.upstream}/${to.repo}/${kind}/${digest}`;
}
