import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { BlobStore, OpenBlob } from '../cache/blob-store.js';
import type { Fill } from '../cache/fill.js';
import type { BlobFills } from '../cache/inflight.js';
import type { UpstreamTarget } from './target.js';

export type CacheOutcome = 'hit' | 'miss' | 'joined' | 'stale';

/** A blob ready to be sent: call stream() once, or release() if no body is sent (HEAD, 416). */
export interface BlobBody {
  size: number | null;
  outcome: CacheOutcome;
  stream(range?: { start: number; end: number }): Readable;
  release(): void;
}

/** Blobs: local first; a miss starts or joins the single fill for that digest. */
export class BlobService {
  constructor(
    private readonly store: BlobStore,
    private readonly fills: BlobFills,
    private readonly log: Logger,
  ) {}

  async get(target: UpstreamTarget, digest: string): Promise<BlobBody> {
    const local = await this.store.open(digest);
    if (local) return fromFile(local, 'hit');
    const { fill, joined } = this.fills.join(digest, {
      label: target.client.label,
      open: (offset, signal) => target.client.openBlob(target.repo, digest, offset, signal),
    });
    await fill.ready;
    if (!fill.readable) {
      // Finished between our join and now: the committed file is there, or the error is final.
      const committed = fill.state === 'done' ? await this.store.open(digest) : null;
      if (committed) return fromFile(committed, joined ? 'joined' : 'miss');
      throw fill.error ?? new Error(`blob ${digest} fill ended without a file`);
    }
    if (!joined) this.#logOutcome(fill, target);
    return fromFill(fill, joined ? 'joined' : 'miss');
  }

  /** Size of a blob without transferring it: local, a running fill's, or an upstream HEAD. */
  async head(target: UpstreamTarget, digest: string): Promise<{ size: number | null; outcome: CacheOutcome }> {
    const local = await this.store.open(digest);
    if (local) {
      await local.handle.close();
      return { size: local.size, outcome: 'hit' };
    }
    const running = this.fills.running(digest);
    if (running?.size != null) return { size: running.size, outcome: 'joined' };
    const { size } = await target.client.headBlob(target.repo, digest);
    return { size, outcome: 'miss' };
  }

  #logOutcome(fill: Fill, target: UpstreamTarget): void {
    const onChange = () => {
      if (fill.state === 'done') this.log.info({ upstream: target.client.name, repo: target.repo, digest: fill.digest, size: fill.size }, 'blob cached');
      else if (fill.state === 'failed') this.log.error({ upstream: target.client.name, repo: target.repo, digest: fill.digest, err: fill.error?.message }, 'blob fill failed; nothing cached');
      else return;
      fill.off('change', onChange);
    };
    fill.on('change', onChange);
  }
}

function fromFile(blob: OpenBlob, outcome: CacheOutcome): BlobBody {
  return {
    size: blob.size,
    outcome,
    stream: (range) =>
      createReadStream('', { fd: blob.handle, autoClose: true, highWaterMark: 256 * 1024, ...(range ?? {}) }),
    release: () => void blob.handle.close().catch(() => {}),
  };
}

function fromFill(fill: Fill, outcome: CacheOutcome): BlobBody {
  return {
    size: fill.size,
    outcome,
    stream: (range) => fill.reader(range?.start ?? 0, range?.end),
    release: () => {},
  };
}
