import type { Db } from '../cache/db.js';

export type JobState = 'running' | 'done' | 'failed';
export type ImageState = 'pending' | 'running' | 'done' | 'failed';

export interface WarmRequest {
  images: string[];
  /** "all", or platforms like "linux/amd64" (validated when the job is created). */
  platforms: 'all' | string[];
  /** Also the referrers (signatures, SBOMs) of every image, with their manifests and blobs. */
  referrers?: boolean;
}

export interface ImageStatus {
  /** The reference as requested. */
  ref: string;
  state: ImageState;
  /** The manifest (or index) the reference resolved to. */
  digest?: string;
  /** Platforms warmed (from the index); absent for a single-platform manifest. */
  platforms?: string[];
  bytesDone: number;
  bytesTotal: number;
  error?: string;
}

/** A warm job as the API reports it and SQLite stores it. */
export interface JobView {
  id: string;
  /** running; done when every image is cached; failed when any image failed or the job was given up. */
  state: JobState;
  platforms: 'all' | string[];
  images: ImageStatus[];
  /** Over the job's distinct blobs (images sharing a layer count it once). */
  bytesDone: number;
  bytesTotal: number;
  errors: { ref: string; message: string }[];
  /** Why the whole job stopped, when it did not run to the end. */
  error?: string;
  /** How many processes have run it (a restart resumes it). */
  attempts: number;
  createdAt: string;
  updatedAt: string;
}

interface JobRow {
  id: string;
  state: JobState;
  request: string;
  images: string;
  attempts: number;
  bytes_done: number;
  bytes_total: number;
  error: string | null;
  created_at: number;
  updated_at: number;
}

/** Stored job fields; the view's errors are derived from the images. */
export interface StoredJob {
  id: string;
  state: JobState;
  request: WarmRequest;
  images: ImageStatus[];
  attempts: number;
  bytesDone: number;
  bytesTotal: number;
  error?: string;
  createdAt: number;
  updatedAt: number;
}

/** Finished jobs beyond this many (newest first) are deleted when a job is created. */
const KEEP_FINISHED = 200;

/** Warm jobs in SQLite, so they outlive the process that runs them. */
export class JobStore {
  readonly #stmt;

  constructor(db: Db) {
    this.#stmt = {
      upsert: db.prepare(
        `INSERT INTO warm_jobs (id, state, request, images, attempts, bytes_done, bytes_total, error, created_at, updated_at)
         VALUES (@id, @state, @request, @images, @attempts, @bytes_done, @bytes_total, @error, @created_at, @updated_at)
         ON CONFLICT (id) DO UPDATE SET state = excluded.state, images = excluded.images, attempts = excluded.attempts,
           bytes_done = excluded.bytes_done, bytes_total = excluded.bytes_total, error = excluded.error,
           updated_at = excluded.updated_at`,
      ),
      get: db.prepare<[string], JobRow>('SELECT * FROM warm_jobs WHERE id = ?'),
      recent: db.prepare<[number], JobRow>('SELECT * FROM warm_jobs ORDER BY created_at DESC, rowid DESC LIMIT ?'),
      running: db.prepare<[], JobRow>("SELECT * FROM warm_jobs WHERE state = 'running' ORDER BY created_at"),
      prune: db.prepare(
        `DELETE FROM warm_jobs WHERE state != 'running' AND id NOT IN
           (SELECT id FROM warm_jobs WHERE state != 'running' ORDER BY created_at DESC, rowid DESC LIMIT ?)`,
      ),
    };
  }

  save(job: StoredJob): void {
    this.#stmt.upsert.run({
      id: job.id,
      state: job.state,
      request: JSON.stringify(job.request),
      images: JSON.stringify(job.images),
      attempts: job.attempts,
      bytes_done: job.bytesDone,
      bytes_total: job.bytesTotal,
      error: job.error ?? null,
      created_at: job.createdAt,
      updated_at: job.updatedAt,
    });
  }

  get(id: string): StoredJob | null {
    const row = this.#stmt.get.get(id);
    return row ? fromRow(row) : null;
  }

  recent(limit: number): StoredJob[] {
    return this.#stmt.recent.all(limit).map(fromRow);
  }

  /** Jobs an earlier process was running when it stopped. */
  running(): StoredJob[] {
    return this.#stmt.running.all().map(fromRow);
  }

  pruneFinished(): void {
    this.#stmt.prune.run(KEEP_FINISHED);
  }
}

function fromRow(row: JobRow): StoredJob {
  return {
    id: row.id,
    state: row.state,
    request: JSON.parse(row.request) as WarmRequest,
    images: JSON.parse(row.images) as ImageStatus[],
    attempts: row.attempts,
    bytesDone: row.bytes_done,
    bytesTotal: row.bytes_total,
    ...(row.error ? { error: row.error } : {}),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export function viewOf(job: StoredJob): JobView {
  return {
    id: job.id,
    state: job.state,
    platforms: job.request.platforms,
    images: job.images,
    bytesDone: job.bytesDone,
    bytesTotal: job.bytesTotal,
    errors: job.images.filter((i) => i.error).map((i) => ({ ref: i.ref, message: i.error! })),
    ...(job.error ? { error: job.error } : {}),
    attempts: job.attempts,
    createdAt: new Date(job.createdAt).toISOString(),
    updatedAt: new Date(job.updatedAt).toISOString(),
  };
}
