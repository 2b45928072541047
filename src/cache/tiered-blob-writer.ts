import type { BlobWriter } from './blob-store.js';
import type { BucketFaults } from './bucket-faults.js';
import type { VerifiedDigest } from './digest.js';
import type { FsBlobWriter } from './fs-blob-io.js';
import { OssStoreError } from './oss-client.js';
import type { OssBlobWriter } from './oss-blob-writer.js';

/**
 * Writes through the bucket writer (which spools to the local writer's file); commits the bucket first (unless that
 * writer does not upload: another member puts the blob in the bucket), then the disk. If the bucket fails (after
 * the retries), the fill goes on to the disk only: the disk is committed once verified, and the bucket's upload is
 * never completed (it is aborted, best-effort). Other failures fail the fill.
 */
export class TieredBlobWriter implements BlobWriter {
  #bucketFailed = false;

  constructor(
    readonly shared: OssBlobWriter,
    private readonly local: FsBlobWriter,
    private readonly faults: BucketFaults,
    private readonly closed: () => void = () => {},
  ) {}

  get digest(): string {
    return this.local.digest;
  }

  async write(offset: number, bytes: Buffer | Buffer[]): Promise<void> {
    if (!this.#bucketFailed) {
      try {
        return await this.shared.write(offset, bytes);
      } catch (err) {
        this.#giveUpBucket(err);
      }
    }
    // Positional: bytes the spool took before the bucket's failure surfaced are written again, unchanged.
    await this.local.write(offset, bytes);
  }

  read(buffer: Buffer, position: number): Promise<number> {
    return this.local.read(buffer, position);
  }

  park(): Promise<void> {
    return this.shared.park();
  }

  /** A 409 from the bucket (another replica committed the blob first) counts as committed there. */
  async commit(verified: VerifiedDigest): Promise<void> {
    if (!this.#bucketFailed && this.shared.uploading) {
      try {
        await this.shared.commit(verified);
      } catch (err) {
        this.#giveUpBucket(err);
      }
    }
    await this.local.commit(verified);
    // The upload is aborted now rather than at close(): a fill's readers may hold the writer open for long.
    if (this.#bucketFailed) await this.shared.abort();
  }

  async abort(): Promise<void> {
    await this.shared.abort();
    await this.local.abort();
  }

  /** Closes the local writer too, and aborts the bucket's upload unless it was completed. */
  close(): Promise<void> {
    this.closed();
    return this.shared.close();
  }

  #giveUpBucket(err: unknown): void {
    if (!(err instanceof OssStoreError)) throw err;
    this.#bucketFailed = true;
    this.faults.failed('upload', { digest: this.digest }, err);
  }
}
