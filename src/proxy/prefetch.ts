import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { manifestContent } from '../oci/manifest.js';
import type { Metrics } from '../observability/metrics.js';
import type { BlobService } from './blob-service.js';
import type { ServedManifest } from './manifest-service.js';
import type { UpstreamTarget } from './target.js';

/** Blobs waiting for a prefetch slot beyond this many are dropped (a burst of manifests must not grow memory). */
const MAX_WAITING = 1000;
/**
 * A manifest whose blobs were all cached is not looked at again for this long: a warm manifest is served thousands
 * of times a second, and parsing it and asking the store about each blob every time cost more than serving it.
 */
const COMPLETE_FOR_MS = 60_000;

/**
 * Layers fetched ahead: when a client is answered an image manifest, its config and layers that are neither cached
 * nor filling are filled in the background, at most `concurrency` at once, so a client fetching them one after
 * another finds them arriving. A client's own blob request never waits for this: it starts or joins the fill at
 * once. A blob the cache cannot take now (not writable, no free download slot, or its fill fails) is dropped
 * without failing anything.
 */
export class Prefetcher {
  readonly #waiting: Array<{ target: UpstreamTarget; digest: string }> = [];
  /** Manifest digests whose blobs were all cached when last looked at (or are being looked at now). */
  readonly #complete = new LRUCache<string, true>({ max: 10_000, ttl: COMPLETE_FOR_MS });
  #running = 0;
  #stopped = false;

  constructor(
    private readonly blobs: BlobService,
    private readonly concurrency: number,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  /** Drops what waits and starts nothing more (the mirror is closing). */
  stop(): void {
    this.#stopped = true;
    this.#waiting.length = 0;
  }

  manifestServed(target: UpstreamTarget, manifest: ServedManifest): void {
    if (this.#stopped || this.#complete.has(manifest.digest)) return;
    const content = manifest.body ? manifestContent(manifest.body, manifest.digest) : null;
    if (content?.kind !== 'image') return;
    this.#complete.set(manifest.digest, true);
    this.blobs.background(this.#queueMissing(target, manifest.digest, [content.config, ...content.layers].map((b) => b.digest)));
  }

  /** Queues the blobs that are neither cached nor filling; the manifest stays 'complete' only if there are none. */
  async #queueMissing(target: UpstreamTarget, manifestDigest: string, digests: string[]): Promise<void> {
    const presence = await Promise.all(digests.map((d) => this.blobs.present(d)));
    if (presence.every((p) => p === 'cached')) return;
    this.#complete.delete(manifestDigest);
    if (this.#stopped) return;
    digests.forEach((digest, i) => {
      if (presence[i] === 'cached') return;
      if (this.#waiting.length >= MAX_WAITING) return void this.metrics.prefetches.inc({ result: 'dropped' });
      this.#waiting.push({ target, digest });
    });
    this.#next();
  }

  #next(): void {
    while (this.#running < this.concurrency && this.#waiting.length > 0) {
      const { target, digest } = this.#waiting.shift()!;
      this.#running++;
      // The next one is queued before this task settles, so a wait for background work sees it.
      this.blobs.background(
        this.#prefetch(target, digest).finally(() => {
          this.#running--;
          this.#next();
        }),
      );
    }
  }

  async #prefetch(target: UpstreamTarget, digest: string): Promise<void> {
    const present = await this.blobs.present(digest);
    if (present === 'cached') return;
    if (present === 'filling') return void this.metrics.prefetches.inc({ result: 'joined' });
    if (!(await this.blobs.writable())) return void this.metrics.prefetches.inc({ result: 'dropped' });
    this.metrics.prefetches.inc({ result: 'started' });
    try {
      // Never waits for a download slot (cache.max_fills): those are for clients first.
      await this.blobs.ensure(target, digest, undefined, AbortSignal.abort());
    } catch (err) {
      this.metrics.prefetches.inc({ result: 'dropped' });
      this.log.debug({ upstream: target.client.name, repo: target.repo, digest, err: (err as Error).message }, 'prefetch dropped');
    }
  }
}
