import { pipeline } from 'node:stream';
import type { Logger } from 'pino';
import type { AccessLog } from '../cache/access-log.js';
import type { BlobReader, BlobStore } from '../cache/blob-store.js';
import type { Fill } from '../cache/fill.js';
import type { BlobFills, JoinedFill } from '../cache/inflight.js';
import type { BlobSource } from '../cache/fill.js';
import { RegistryError } from '../http/errors.js';
import type { StreamedBody } from '../http/stream-response.js';
import type { Metrics } from '../observability/metrics.js';
import type { ByteRange } from '../http/range.js';
import type { MissRouting } from './miss-routing.js';
import type { UpstreamTarget } from './target.js';

const MiB = 1024 * 1024;
/** Fills of smaller blobs take about as long as a round trip: their bytes per second say nothing of throughput. */
const THROUGHPUT_MIN_SIZE = MiB;

export type CacheOutcome = 'hit' | 'miss' | 'joined' | 'stale';

/**
 * Who asks for a fill: a client by address, a warm job (with the signal that stops it waiting for a slot), or
 * another cluster member forwarding its client's miss (the client was counted there: like a warm job, it counts
 * only against cache.max_fills here, and its fill is always from the upstream: one hop).
 */
type Asker = { client: string | undefined } | { warm: AbortSignal | undefined } | { peer: AbortSignal | undefined };

/** A blob ready to be sent: call stream() or sendTo() once, or release() if no body is sent (HEAD, 416). */
export interface BlobBody extends StreamedBody {
  size: number | null;
  outcome: CacheOutcome;
  release(): void;
}

/** How long the presigned URL a blob GET is redirected to stays valid (a started download outlives it). */
const REDIRECT_TTL_MS = 5 * 60_000;

/** Blobs: local first; a miss starts or joins the single fill for that digest. */
export class BlobService {
  constructor(
    private readonly store: BlobStore,
    private readonly fills: BlobFills,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly access: AccessLog,
    private readonly opts: {
      /** storage.oss.redirect: blob GETs of blobs in the bucket are answered with a presigned URL. */
      redirect?: boolean;
      /** Set in a cluster: misses of digests another member owns are fetched through it. */
      routing?: MissRouting;
    } = {},
  ) {}

  /** Where to redirect a blob GET to (storage.oss.redirect), or null to serve it here: not in the bucket, or OSS failed. */
  async redirect(digest: string): Promise<string | null> {
    if (!this.opts.redirect || !this.store.presignedUrl) return null;
    try {
      return await this.store.presignedUrl(digest, REDIRECT_TTL_MS);
    } catch (err) {
      this.log.warn({ digest, err: (err as Error).message }, 'blob GET not redirected to the bucket: served by the mirror');
      return null;
    }
  }

  /**
   * A blob for a client (by address: the fills a client may start at once are limited, see FillSlots). A
   * fill's body holds the fill until it is streamed or released.
   */
  get(target: UpstreamTarget, digest: string, client: string | undefined): Promise<BlobBody> {
    return this.#get(target, digest, { client });
  }

  /** A blob for another cluster member that forwarded its miss here (the owner): never forwarded again. */
  getForPeer(target: UpstreamTarget, digest: string, signal: AbortSignal | undefined): Promise<BlobBody> {
    return this.#get(target, digest, { peer: signal });
  }

  async #get(target: UpstreamTarget, digest: string, asker: { client: string | undefined } | { peer: AbortSignal | undefined }): Promise<BlobBody> {
    const local = await this.store.open(digest);
    if (local) {
      this.access.blob(digest);
      return fromStore(local, 'hit');
    }
    const { fill, joined, release } = await this.#join(target, digest, asker);
    try {
      await fill.ready;
      if (fill.readable) return fromFill(fill, joined ? 'joined' : 'miss', release);
    } catch (err) {
      release();
      throw err;
    }
    release();
    // Finished between our join and now: the committed file is there, or the error is final.
    const committed = fill.state === 'done' ? await this.store.open(digest) : null;
    if (committed) return fromStore(committed, joined ? 'joined' : 'miss');
    throw fill.error ?? new Error(`blob ${digest} fill ended without a file`);
  }

  /** Size of a blob without transferring it: local, a running fill's, or an upstream HEAD. */
  async head(target: UpstreamTarget, digest: string): Promise<{ size: number | null; outcome: CacheOutcome }> {
    const cached = await this.#cachedSize(digest);
    if (cached !== null) return { size: cached, outcome: 'hit' };
    const running = this.fills.running(digest);
    if (running?.size != null) return { size: running.size, outcome: 'joined' };
    const { size } = await target.client.headBlob(target.repo, digest);
    return { size, outcome: 'miss' };
  }

  /**
   * Makes sure a blob is cached without reading it: starts or joins its fill and resolves with its size once
   * committed (at once when it is cached already). `onFill` is given the fill, for progress (fill.received).
   * Warm jobs use it: a new fill waits for a free slot under cache.max_fills rather than failing, until signal aborts.
   */
  async ensure(
    target: UpstreamTarget,
    digest: string,
    onFill?: (fill: Fill) => void,
    signal?: AbortSignal,
  ): Promise<{ size: number; outcome: CacheOutcome }> {
    const cached = await this.#cachedSize(digest);
    if (cached !== null) return { size: cached, outcome: 'hit' };
    const { fill, joined, release } = await this.#join(target, digest, { warm: signal });
    onFill?.(fill);
    try {
      await fill.finished;
    } finally {
      release();
    }
    if (fill.state === 'failed') throw fill.error ?? new Error(`blob ${digest} fill failed`);
    return { size: fill.size!, outcome: joined ? 'joined' : 'miss' };
  }

  /** Whether a blob is cached or being filled now (not counted as an access). */
  async present(digest: string): Promise<'cached' | 'filling' | null> {
    if (await this.store.stat(digest)) return 'cached';
    return this.fills.running(digest) ? 'filling' : null;
  }

  /** Runs a task that starts fills in the background; shutdown and tests waiting for fills wait for it too. */
  background(task: Promise<void>): void {
    this.fills.track(task);
  }

  /** Whether the cache can be written now (a prefetch is not started when it cannot). */
  writable(): Promise<boolean> {
    return this.store.probe().then(
      () => true,
      () => false,
    );
  }

  /** The size of a committed blob (counted as an access), or null when it is not cached. */
  async #cachedSize(digest: string): Promise<number | null> {
    const local = await this.store.stat(digest);
    if (!local) return null;
    this.access.blob(digest);
    return local.size;
  }

  /**
   * Joins the running fill for digest, or starts one from the target's upstream, through the digest's owner in a
   * cluster unless a peer asks (a warm job or a peer waits for a slot).
   */
  #join(target: UpstreamTarget, digest: string, starter: Asker): JoinedFill | Promise<JoinedFill> {
    const observer = target.client.observer;
    const upstream: BlobSource = {
      label: target.client.label,
      open: (range, signal) => target.client.openBlob(target.repo, digest, range, signal),
      onBytes: (n) => observer.received('blob', n),
      segments: target.client.fillPlan,
    };
    const source = this.opts.routing && !('peer' in starter) ? this.opts.routing.blobSource(target, digest, upstream) : upstream;
    const onFinish = (finished: Fill, ms: number) => this.#finished(finished, target, ms);
    const counted = (joining: JoinedFill) => {
      if (joining.joined) this.metrics.fillJoins.inc();
      return joining;
    };
    if ('client' in starter) return counted(this.fills.join(digest, source, starter, onFinish));
    if ('warm' in starter) return this.fills.joinWhenFree(digest, source, onFinish, starter.warm).then(counted);
    return this.fills.joinWhenFree(digest, source, onFinish, starter.peer, true).then(counted);
  }

  #finished(fill: Fill, target: UpstreamTarget, ms: number): void {
    const fields = { upstream: target.client.name, repo: target.repo, digest: fill.digest };
    if (fill.committed) {
      this.metrics.fills.inc({ result: 'committed' });
      this.metrics.fillSegments.observe(fill.segments);
      const bytesPerSecond = fill.size! / (Math.max(ms, 1) / 1000);
      if (fill.size! >= THROUGHPUT_MIN_SIZE) this.metrics.fillThroughput.observe({ upstream: target.client.name }, bytesPerSecond);
      const mibPerSecond = Math.round((bytesPerSecond / MiB) * 10) / 10;
      this.log.info({ ...fields, size: fill.size, segments: fill.segments, ms: Math.round(ms), mibPerSecond }, 'blob cached');
    } else if (fill.state === 'done') {
      this.metrics.fills.inc({ result: 'relayed' });
      this.log.info({ ...fields, size: fill.size, reason: fill.relayReason }, 'blob relayed to its clients; not cached');
    } else if (fill.abandoned) {
      this.metrics.fills.inc({ result: 'abandoned' });
      this.log.info({ ...fields, received: fill.received, size: fill.size }, 'blob download abandoned: no client left reading it');
    } else if (fill.dropped) {
      // A prefetch or warm job the cache could not take, or a relay whose clients all left: no client misses it.
      this.metrics.fills.inc({ result: 'dropped' });
      this.log.debug({ ...fields, size: fill.size, reason: fill.relayReason }, 'blob not cached and nobody to relay it to; dropped');
    } else if (fill.error instanceof RegistryError && fill.error.kind === 'BLOB_UNKNOWN') {
      // The client is answered 404 BLOB_UNKNOWN (its request line says so): nothing went wrong here.
      this.metrics.fills.inc({ result: 'not_found' });
      this.log.debug({ ...fields, reason: fill.error.message }, 'blob not found upstream; nothing cached');
    } else {
      this.metrics.fills.inc({ result: 'failed' });
      this.log.error({ ...fields, err: fill.error?.message }, 'blob fill failed; nothing cached');
    }
  }
}

function fromStore(blob: BlobReader, outcome: CacheOutcome): BlobBody {
  return {
    size: blob.size,
    outcome,
    stream: (range) => blob.stream(range),
    sendTo: (out, range, onBytes) => blob.sendTo(out, range, onBytes),
    release: () => blob.close(),
  };
}

/** A body following a fill; `release` lets go of the hold on it once a reader follows it (or no body is sent). */
function fromFill(fill: Fill, outcome: CacheOutcome, release: () => void): BlobBody {
  const stream = (range?: ByteRange) => {
    try {
      return fill.reader(range?.start ?? 0, range?.end);
    } finally {
      release();
    }
  };
  return {
    size: fill.size,
    outcome,
    stream,
    sendTo: (out, range, onBytes) => {
      const reader = stream(range);
      reader.on('data', (chunk: Buffer) => onBytes(chunk.length));
      // An error on either side destroys both: a failed fill cuts the client short, a gone client detaches.
      pipeline(reader, out, () => {});
    },
    release,
  };
}
