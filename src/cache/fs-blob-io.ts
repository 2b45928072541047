import { constants, createReadStream } from 'node:fs';
import { type FileHandle, mkdir, open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { BlobInfo, BlobRange, BlobReader, BlobWriter } from './blob-store.js';
import { checkVerified, type VerifiedDigest } from './digest.js';
import { type ReadBuffers, sendFile } from './fs-file-sender.js';

/** A committed blob file opened for reading; `done` tells the store the reader is gone. */
export class FsBlobReader implements BlobReader {
  #used = false;

  constructor(
    private readonly handle: FileHandle,
    readonly size: number,
    private readonly done: () => void,
    private readonly buffers: ReadBuffers,
  ) {}

  stream(range?: BlobRange): Readable {
    this.#used = true;
    return createReadStream('', { fd: this.handle, autoClose: true, highWaterMark: 512 * 1024, ...(range ?? {}) }).once('close', this.done);
  }

  sendTo(out: Writable, range: BlobRange | undefined, onBytes: (n: number) => void): void {
    this.#used = true;
    void sendFile(this.handle, range?.start ?? 0, range?.end ?? this.size - 1, out, this.buffers, onBytes).finally(() => this.#release());
  }

  close(): void {
    if (this.#used) return;
    this.#used = true;
    this.#release();
  }

  #release(): void {
    void this.handle.close().catch(() => {});
    this.done();
  }
}

/**
 * A blob written to a temp file under tmp/; commit = fsync + rename into blobs/ + fsync of the directory. A parked
 * writer has synced and closed its file, and reopens it when read or written again.
 */
export class FsBlobWriter implements BlobWriter {
  #end = 0;
  #state: 'open' | 'committed' | 'aborted' = 'open';
  #closed = false;
  #handle: Promise<FileHandle> | null;

  constructor(
    readonly digest: string,
    /** The temp file the bytes are written to until commit. */
    readonly path: string,
    handle: FileHandle,
    private readonly target: string,
    private readonly tell: { committed(blob: BlobInfo): void; closed(): void },
  ) {
    this.#handle = Promise.resolve(handle);
  }

  async write(offset: number, bytes: Buffer | Buffer[]): Promise<void> {
    const handle = await this.#file();
    const parts = (Array.isArray(bytes) ? bytes : [bytes]).filter((part) => part.length > 0);
    let position = offset;
    // A nearly full disk may take part of a write without an error: write until all of it is in.
    for (let i = 0; i < parts.length; ) {
      const { bytesWritten } = await handle.writev(parts.slice(i), position);
      if (bytesWritten === 0) throw Object.assign(new Error('short write: no space left on device'), { code: 'ENOSPC' });
      position += bytesWritten;
      this.#end = Math.max(this.#end, position);
      for (let left = bytesWritten; left > 0 && i < parts.length; ) {
        const part = parts[i]!;
        if (part.length <= left) {
          left -= part.length;
          i++;
        } else {
          parts[i] = part.subarray(left);
          left = 0;
        }
      }
    }
  }

  async read(buffer: Buffer, position: number): Promise<number> {
    return (await (await this.#file()).read(buffer, 0, buffer.length, position)).bytesRead;
  }

  async park(): Promise<void> {
    const handle = this.#handle;
    if (!handle) return;
    this.#handle = null;
    const file = await handle;
    await file.sync();
    await file.close();
  }

  async commit(verified: VerifiedDigest): Promise<void> {
    if (this.#state !== 'open') throw new Error(`blob ${this.digest}: commit after ${this.#state}`);
    checkVerified(verified, this.digest, this.#end);
    if (this.#handle) await (await this.#handle).sync(); // a parked file was synced when parked
    await mkdir(dirname(this.target), { recursive: true });
    await rename(this.path, this.target);
    await syncDirectory(dirname(this.target));
    this.#state = 'committed';
    this.tell.committed({ digest: this.digest, size: verified.size });
  }

  async abort(): Promise<void> {
    if (this.#state !== 'open') return;
    this.#state = 'aborted';
    // An open handle stays open: bytes already written remain readable until close() (not those of a parked writer).
    await unlink(this.path).catch(() => {});
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.abort();
    const handle = this.#handle;
    this.#handle = null;
    if (handle) await (await handle).close().catch(() => {});
    this.tell.closed();
  }

  /** The open file, reopened where it is now if the writer was parked. */
  #file(): Promise<FileHandle> {
    if (this.#closed) return Promise.reject(new Error(`blob ${this.digest}: writer closed`));
    this.#handle ??= open(this.#state === 'committed' ? this.target : this.path, 'r+');
    return this.#handle;
  }
}

async function syncDirectory(path: string): Promise<void> {
  const dir = await open(path, constants.O_RDONLY);
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
