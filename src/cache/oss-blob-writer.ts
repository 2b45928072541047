import type OSS from 'ali-oss';
import type { BlobInfo, BlobWriter } from './blob-store.js';
import { checkVerified, type VerifiedDigest } from './digest.js';
import type { FsBlobWriter } from './fs-blob-io.js';
import type { OssObserver } from '../observability/oss-metrics.js';
import { isAlreadyExists, ossCall, withRetries } from './oss-client.js';

const MAX_PARTS = 10_000;
/** Part uploads running at once per writer; a write waits (back-pressure) while this many are in flight. */
const PARALLEL_PARTS = 2;
const FORBID_OVERWRITE = { headers: { 'x-oss-forbid-overwrite': 'true' } };

export interface OssWriterTarget {
  client: OSS;
  bucket: string;
  key: string;
  partSize: number;
  /** The local spool holding every written byte (read() and part uploads read it, the latter by its file's path). */
  spool: FsBlobWriter;
  observer: OssObserver;
}

/**
 * A blob written as a multipart upload at its final key. Bytes go to a local spool file first (positional writes
 * may come in any order); each part is uploaded from the spool once all its bytes are in. commit() uploads the
 * last part and completes the upload with forbid-overwrite, so the key holds an object only once it was verified;
 * a blob smaller than a part is put with forbid-overwrite instead. Nothing is visible before commit.
 */
export class OssBlobWriter implements BlobWriter {
  readonly #written = new Coverage();
  readonly #scheduled = new Set<number>();
  readonly #parts: { number: number; etag: string }[] = [];
  readonly #inFlight = new Set<Promise<void>>();
  #uploadId: Promise<string> | null = null;
  #failure: Error | null = null;
  #state: 'open' | 'committed' | 'aborted' = 'open';
  #closed = false;
  #uploading: boolean;
  /** startUploading()'s upload of the parts spooled before it (at most PARALLEL_PARTS at once, with the writes'). */
  #catchingUp: Promise<void> = Promise.resolve();

  /** A writer not `uploading` only spools until startUploading(); it is not to be committed before that. */
  constructor(
    readonly digest: string,
    private readonly target: OssWriterTarget,
    private readonly tell: { committed(blob: BlobInfo): void; started(uploadId: string): void; closed(uploadId: string | null): void },
    { uploading = true }: { uploading?: boolean } = {},
  ) {
    this.#uploading = uploading;
  }

  get uploading(): boolean {
    return this.#uploading;
  }

  /** Uploads from now on, the whole parts already spooled first. */
  startUploading(): void {
    if (this.#uploading || this.#state !== 'open') return;
    this.#uploading = true;
    this.#catchingUp = this.#uploadSpooled();
  }

  async #uploadSpooled(): Promise<void> {
    const { partSize } = this.target;
    for (let part = 0; (part + 1) * partSize <= this.#written.end; part++) {
      while (this.#inFlight.size >= PARALLEL_PARTS) await Promise.race(this.#inFlight);
      if (this.#state !== 'open' || this.#failure) return;
      if (this.#written.covers(part * partSize, (part + 1) * partSize)) this.#schedulePart(part, (part + 1) * partSize);
    }
  }

  async write(offset: number, bytes: Buffer | Buffer[]): Promise<void> {
    if (this.#failure) throw this.#failure;
    const length = (Array.isArray(bytes) ? bytes : [bytes]).reduce((n, b) => n + b.length, 0);
    await this.target.spool.write(offset, bytes);
    this.#written.add(offset, offset + length);
    const { partSize } = this.target;
    if (this.#state !== 'open' || !this.#uploading) return;
    // Every part the write touched: it may have filled the last gap of a part it does not end.
    for (let part = Math.floor(offset / partSize); part * partSize < offset + length; part++) {
      if (this.#written.covers(part * partSize, (part + 1) * partSize)) this.#schedulePart(part, (part + 1) * partSize);
    }
    while (this.#inFlight.size >= PARALLEL_PARTS) await Promise.race(this.#inFlight);
    if (this.#failure) throw this.#failure;
  }

  read(buffer: Buffer, position: number): Promise<number> {
    return this.target.spool.read(buffer, position);
  }

  /** Parts upload from the spool by its path: parking closes only the spool's descriptor. */
  park(): Promise<void> {
    return this.target.spool.park();
  }

  async commit(verified: VerifiedDigest): Promise<void> {
    if (this.#state !== 'open' || !this.#uploading) throw new Error(`blob ${this.digest}: commit ${this.#uploading ? `after ${this.#state}` : 'before uploading'}`);
    const size = this.#written.end;
    checkVerified(verified, this.digest, size);
    if (!this.#written.covers(0, size)) throw new Error(`blob ${this.digest}: commit refused, bytes before ${size} are missing`);
    await this.#catchingUp;
    if (this.#uploadId === null) await this.#putWhole(size);
    else await this.#completeUpload(size);
    this.#state = 'committed';
    this.tell.committed({ digest: this.digest, size });
  }

  /** A blob smaller than one part: one PutObject with forbid-overwrite (409: another writer put it first). */
  async #putWhole(size: number): Promise<void> {
    const { client, bucket, key, observer } = this.target;
    const bytes = Buffer.alloc(size);
    if (size > 0) await this.target.spool.read(bytes, 0);
    await withRetries(() => ossCall('PutObject', bucket, key, () => client.put(key, bytes, FORBID_OVERWRITE), observer)).then(
      () => observer.bytes('sent', size),
      (err: unknown) => {
        if (!isAlreadyExists(err)) throw err;
      },
    );
  }

  async #completeUpload(size: number): Promise<void> {
    const { client, bucket, key, partSize, observer } = this.target;
    const lastPart = Math.ceil(size / partSize) - 1;
    if (!this.#scheduled.has(lastPart)) this.#schedulePart(lastPart, size);
    await this.#settle();
    if (this.#failure) throw this.#failure;
    const uploadId = await this.#uploadId!;
    const parts = [...this.#parts].sort((a, b) => a.number - b.number);
    try {
      await withRetries(() => ossCall('CompleteMultipartUpload', bucket, key, () => client.completeMultipartUpload(key, uploadId, parts, FORBID_OVERWRITE), observer));
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      // Another writer committed the same digest first: its object is the blob; ours is not needed.
      await this.#abortUpload();
    }
  }

  #schedulePart(part: number, end: number): void {
    if (this.#scheduled.has(part)) return;
    if (part >= MAX_PARTS) {
      this.#failure ??= new Error(`blob ${this.digest}: larger than ${MAX_PARTS} parts of ${this.target.partSize} bytes (raise storage.oss.part_size)`);
      return;
    }
    this.#scheduled.add(part);
    const { client, bucket, key, partSize, spool, observer } = this.target;
    const task = (async () => {
      const uploadId = await this.#initiated();
      const { etag } = await withRetries(() =>
        ossCall('UploadPart', bucket, key, () => client.uploadPart(key, uploadId, part + 1, spool.path, part * partSize, end), observer),
      );
      observer.bytes('sent', end - part * partSize);
      this.#parts.push({ number: part + 1, etag });
    })().catch((err: unknown) => {
      this.#failure ??= err instanceof Error ? err : new Error(String(err));
    });
    this.#inFlight.add(task);
    void task.finally(() => this.#inFlight.delete(task));
  }

  #initiated(): Promise<string> {
    const { client, bucket, key, observer } = this.target;
    this.#uploadId ??= withRetries(() => ossCall('InitiateMultipartUpload', bucket, key, () => client.initMultipartUpload(key), observer)).then(({ uploadId }) => {
      this.tell.started(uploadId);
      return uploadId;
    });
    return this.#uploadId;
  }

  async #settle(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.all(this.#inFlight);
  }

  /** Aborts the multipart upload, if one was started; a failure leaves it to leftovers() (never rejects). */
  async #abortUpload(): Promise<void> {
    const uploadId = await this.#uploadId?.catch(() => null);
    if (!uploadId) return;
    const { client, bucket, key, observer } = this.target;
    await withRetries(() => ossCall('AbortMultipartUpload', bucket, key, () => client.abortMultipartUpload(key, uploadId), observer)).catch(() => {});
  }

  async abort(): Promise<void> {
    if (this.#state !== 'open') return;
    this.#state = 'aborted';
    await this.#catchingUp;
    await this.#settle();
    await this.#abortUpload();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.abort();
    await this.target.spool.close();
    this.tell.closed((await this.#uploadId?.catch(() => null)) ?? null);
  }
}

/** Which byte ranges [start, end) were written: sorted, disjoint, merged. */
class Coverage {
  #ranges: [number, number][] = [];

  add(start: number, end: number): void {
    if (end <= start) return;
    const merged: [number, number][] = [];
    for (const r of [...this.#ranges, [start, end] as [number, number]].sort((a, b) => a[0] - b[0])) {
      const last = merged.at(-1);
      if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
      else merged.push([r[0], r[1]]);
    }
    this.#ranges = merged;
  }

  covers(start: number, end: number): boolean {
    return end <= start || this.#ranges.some(([s, e]) => s <= start && end <= e);
  }

  get end(): number {
    return this.#ranges.at(-1)?.[1] ?? 0;
  }
}
