import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { parseImageRef } from '../oci/image-ref.js';
import { parsePlatform, type PlatformChoice } from '../oci/platform.js';
import type { BlobService } from '../proxy/blob-service.js';
import type { ManifestService } from '../proxy/manifest-service.js';
import { planImage } from '../proxy/image-plan.js';
import type { UpstreamTarget } from '../proxy/target.js';
import { type JobStore, type JobView, type StoredJob, viewOf, type WarmRequest } from './jobs.js';
import { Limiter } from './limiter.js';
import { WarmJob } from './warm-job.js';

export interface WarmerDeps {
  /** The route function of the /v2 API: client repository name -> upstream target; throws NAME_UNKNOWN. */
  route(name: string): UpstreamTarget;
  manifests: ManifestService;
  blobs: BlobService;
  jobs: JobStore;
  /** Upstream downloads running at once for all warm jobs together. */
  concurrency: number;
  now: () => number;
  log: Logger;
}

/** A job interrupted by this many restarts is marked failed instead of being resumed once more. */
const MAX_ATTEMPTS = 3;
/** Blob errors quoted in an image's error message; the rest are counted. */
const QUOTED_ERRORS = 3;
/** A running job is written to SQLite at most this often (its end at once): a big job changes state often. */
const SAVE_EVERY_MS = 1000;

/**
 * Runs warm jobs: each image reference is routed like a client's request, its manifests are fetched through the
 * manifest service, and its blobs are cached through the blob service's single fills, which a client pulling
 * the same blob joins (and the other way round). Jobs are stored in SQLite as they progress; a job the process
 * did not finish is resumed by the next one.
 */
export class Warmer {
  readonly #running = new Map<string, WarmJob>();
  readonly #limiter: Limiter;
  readonly #stopping = new AbortController();

  constructor(private readonly deps: WarmerDeps) {
    this.#limiter = new Limiter(deps.concurrency);
  }

  /** Starts a job; the request's platforms must be "all" or valid platform strings. */
  start(request: WarmRequest): JobView {
    const now = this.deps.now();
    const job: StoredJob = {
      id: randomBytes(8).toString('hex'),
      state: 'running',
      request,
      images: request.images.map((ref) => ({ ref, state: 'pending', bytesDone: 0, bytesTotal: 0 })),
      attempts: 1,
      bytesDone: 0,
      bytesTotal: 0,
      createdAt: now,
      updatedAt: now,
    };
    this.deps.jobs.pruneFinished();
    this.deps.jobs.save(job);
    this.deps.log.info({ job: job.id, images: request.images.length, platforms: request.platforms }, 'warm job started');
    return viewOf(this.#launch(job).snapshot());
  }

  /** Resumes the jobs an earlier process left running, or marks failed those interrupted too often. */
  resume(): void {
    for (const job of this.deps.jobs.running()) {
      if (job.attempts >= MAX_ATTEMPTS) {
        const error = `interrupted by a restart ${job.attempts} times; not resumed again`;
        this.deps.jobs.save({
          ...job,
          state: 'failed',
          error,
          images: job.images.map((i) => (i.state === 'done' ? i : { ...i, state: 'failed', error: i.error ?? 'interrupted' })),
          updatedAt: this.deps.now(),
        });
        this.deps.log.warn({ job: job.id, attempts: job.attempts }, 'warm job interrupted too often; marked failed');
        continue;
      }
      const resumed = { ...job, attempts: job.attempts + 1 };
      this.deps.jobs.save(resumed);
      this.deps.log.info({ job: job.id, attempt: resumed.attempts }, 'resuming warm job left running by an earlier process');
      this.#launch(resumed);
    }
  }

  get(id: string): JobView | null {
    const live = this.#running.get(id);
    if (live) return viewOf(live.snapshot());
    const stored = this.deps.jobs.get(id);
    return stored ? viewOf(stored) : null;
  }

  recent(limit: number): JobView[] {
    return this.deps.jobs.recent(limit).map((j) => viewOf(this.#running.get(j.id)?.snapshot() ?? j));
  }

  /** The job while this process runs it (for live progress); undefined once finished. */
  live(id: string): WarmJob | undefined {
    return this.#running.get(id);
  }

  /** Aborted when the mirror begins to shut down. */
  get stopping(): AbortSignal {
    return this.#stopping.signal;
  }

  get runningJobs(): number {
    return this.#running.size;
  }

  /**
   * Stops starting downloads and stops writing to the database; running jobs stay "running" in SQLite for the
   * next process to resume. Fills already started run on (the server's shutdown waits for them).
   */
  close(): void {
    this.#stopping.abort(new Error('the mirror is shutting down'));
  }

  #launch(stored: StoredJob): WarmJob {
    const job = new WarmJob(stored, this.deps.now);
    this.#running.set(job.id, job);
    let timer: NodeJS.Timeout | undefined;
    const save = () => {
      clearTimeout(timer);
      timer = undefined;
      if (this.#stopping.signal.aborted) return;
      try {
        this.deps.jobs.save(job.snapshot());
      } catch (err) {
        // The job runs on; a later save (or its end) may succeed, and a restart resumes it anyway.
        this.deps.log.error({ job: job.id, err: (err as Error).message }, 'cannot save warm job progress');
      }
    };
    job.on('change', () => {
      if (job.state !== 'running') save();
      else timer ??= setTimeout(save, SAVE_EVERY_MS).unref();
    });
    const choice: PlatformChoice = stored.request.platforms === 'all' ? 'all' : stored.request.platforms.map((p) => parsePlatform(p)!);
    const images = Array.from({ length: job.imageCount }, (_, i) => this.#warmImage(job, i, choice));
    void Promise.all(images).then(() => {
      if (this.#stopping.signal.aborted) return;
      job.finish();
      this.#running.delete(job.id);
      const { bytesDone, images: status } = job.snapshot();
      const failed = status.filter((i) => i.state === 'failed').length;
      this.deps.log.info({ job: job.id, state: job.state, images: status.length, failed, bytes: bytesDone }, 'warm job finished');
    });
    return job;
  }

  async #warmImage(job: WarmJob, i: number, choice: PlatformChoice): Promise<void> {
    const signal = this.#stopping.signal;
    const ref = job.ref(i);
    job.started(i);
    try {
      const image = parseImageRef(ref);
      const target = this.deps.route(image.name);
      const plan = await planImage(target, image, choice, {
        manifests: this.deps.manifests,
        limit: (fetch) => this.#limiter.run(fetch, signal),
      });
      job.planned(i, plan);
      const results = await Promise.allSettled(
        plan.blobs.map((b) =>
          this.#limiter
            .run(() => this.deps.blobs.ensure(target, b.digest, (fill) => job.filling(b.digest, fill), signal), signal)
            .then(() => job.blobDone(b.digest)),
        ),
      );
      if (signal.aborted) return;
      const errors = plan.missing.map((p) => `the index has no ${p} manifest (it has ${plan.offered.join(', ') || 'no platforms'})`);
      const blobErrors = results.flatMap((r, k) => (r.status === 'rejected' ? [`blob ${plan.blobs[k]!.digest}: ${messageOf(r.reason)}`] : []));
      errors.push(...blobErrors.slice(0, QUOTED_ERRORS));
      if (blobErrors.length > QUOTED_ERRORS) errors.push(`${blobErrors.length - QUOTED_ERRORS} more blobs failed`);
      if (errors.length === 0) return job.succeeded(i);
      job.failed(i, errors.join('; '));
    } catch (err) {
      if (signal.aborted) return;
      job.failed(i, messageOf(err));
    }
    this.deps.log.warn({ job: job.id, ref, err: job.snapshot().images[i]!.error }, 'warming an image failed');
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
