import { EventEmitter } from 'node:events';
import type { Fill } from '../cache/fill.js';
import type { ImageStatus, JobState, StoredJob } from './jobs.js';
import type { ImagePlan } from '../proxy/image-plan.js';

interface BlobProgress {
  size: number;
  done: boolean;
  /** The fill downloading it, while one runs. */
  fill: Fill | null;
}

const bytesOf = (b: BlobProgress): number => (b.done ? b.size : Math.min(b.fill?.received ?? 0, b.size));

/**
 * A warm job being run by this process: its images' status and its blobs' progress. Emits 'change' whenever an
 * image or the job changes state; byte counts move continuously and are read with snapshot().
 */
export class WarmJob extends EventEmitter {
  readonly #images: ImageStatus[];
  readonly #blobs = new Map<string, BlobProgress>();
  /** Blob digests of each planned image, by image index. */
  readonly #imageBlobs = new Map<number, string[]>();
  #state: JobState = 'running';
  #error: string | undefined;
  #updatedAt: number;

  constructor(
    private readonly job: StoredJob,
    private readonly now: () => number,
  ) {
    super();
    this.setMaxListeners(0);
    this.#images = job.images.map((i) => ({ ref: i.ref, state: 'pending', bytesDone: 0, bytesTotal: 0 }));
    this.#updatedAt = now();
  }

  get id(): string {
    return this.job.id;
  }

  get state(): JobState {
    return this.#state;
  }

  get imageCount(): number {
    return this.#images.length;
  }

  ref(image: number): string {
    return this.#images[image]!.ref;
  }

  started(image: number): void {
    this.#set(image, { state: 'running' });
  }

  planned(image: number, plan: ImagePlan): void {
    for (const b of plan.blobs) if (!this.#blobs.has(b.digest)) this.#blobs.set(b.digest, { size: b.size, done: false, fill: null });
    this.#imageBlobs.set(image, plan.blobs.map((b) => b.digest));
    this.#set(image, {
      digest: plan.digest,
      ...(plan.platforms.length ? { platforms: plan.platforms } : {}),
      bytesTotal: plan.blobs.reduce((n, b) => n + b.size, 0),
    });
  }

  filling(digest: string, fill: Fill): void {
    this.#blobs.get(digest)!.fill = fill;
  }

  blobDone(digest: string): void {
    const b = this.#blobs.get(digest)!;
    b.done = true;
    b.fill = null;
  }

  succeeded(image: number): void {
    this.#set(image, { state: 'done' });
  }

  failed(image: number, error: string): void {
    this.#set(image, { state: 'failed', error });
  }

  /** Ends the job: done if every image is cached, else failed. */
  finish(error?: string): void {
    this.#state = !error && this.#images.every((i) => i.state === 'done') ? 'done' : 'failed';
    if (error) this.#error = error;
    this.#updatedAt = this.now();
    this.emit('change');
  }

  /** The job as stored and reported, with byte counts as of now. */
  snapshot(): StoredJob {
    let bytesDone = 0;
    let bytesTotal = 0;
    for (const b of this.#blobs.values()) {
      bytesDone += bytesOf(b);
      bytesTotal += b.size;
    }
    const images = this.#images.map((img, i) => {
      const digests = this.#imageBlobs.get(i);
      if (!digests) return { ...img };
      return { ...img, bytesDone: digests.reduce((n, d) => n + bytesOf(this.#blobs.get(d)!), 0) };
    });
    return {
      ...this.job,
      state: this.#state,
      images,
      bytesDone,
      bytesTotal,
      ...(this.#error ? { error: this.#error } : {}),
      updatedAt: this.#updatedAt,
    };
  }

  #set(image: number, patch: Partial<ImageStatus>): void {
    this.#images[image] = { ...this.#images[image]!, ...patch };
    this.#updatedAt = this.now();
    this.emit('change');
  }
}
