import type OSS from 'ali-oss';
import { PassThrough, pipeline, type Readable, Transform, type Writable } from 'node:stream';
import type { BlobRange, BlobReader } from './blob-store.js';
import type { OssObserver } from '../observability/oss-metrics.js';
import { ossCall } from './oss-client.js';

/**
 * A committed blob in the bucket: each stream is one ranged GET, piped with back-pressure (never buffered whole).
 * A body that breaks off or comes out shorter than the range ends the stream with an error, so a consumer is cut
 * short rather than given wrong bytes. `done` tells the store the reader is gone.
 */
export class OssBlobReader implements BlobReader {
  #used = false;

  constructor(
    private readonly object: { client: OSS; bucket: string; key: string; timeoutMs: number; observer: OssObserver },
    readonly size: number,
    private readonly done: () => void,
  ) {}

  stream(range?: BlobRange): Readable {
    return this.#open(range, () => {});
  }

  sendTo(out: Writable, range: BlobRange | undefined, onBytes: (n: number) => void): void {
    pipeline(this.#open(range, onBytes), out, () => {});
  }

  close(): void {
    if (this.#used) return;
    this.#used = true;
    this.done();
  }

  #open(range: BlobRange | undefined, onBytes: (n: number) => void): Readable {
    this.#used = true;
    const out = new PassThrough({ highWaterMark: 512 * 1024 });
    out.once('close', this.done);
    const start = range?.start ?? 0;
    const end = range?.end ?? this.size - 1;
    if (end < start) out.end();
    else void this.#get(start, end, out, onBytes);
    return out;
  }

  async #get(start: number, end: number, out: PassThrough, onBytes: (n: number) => void): Promise<void> {
    const { client, bucket, key, observer } = this.object;
    let body: NodeJS.ReadableStream;
    try {
      const headers = { Range: `bytes=${start}-${end}`, 'x-oss-range-behavior': 'standard' };
      const answer = await ossCall('GetObject', bucket, key, () => client.getStream(key, { headers }), observer);
      body = answer.stream;
      const contentRange = answer.res.headers['content-range'] ?? '';
      if (answer.res.status !== 206 || !contentRange.startsWith(`bytes ${start}-${end}/`)) {
        (body as Readable).destroy();
        throw new Error(`OSS GetObject ${bucket}/${key}: asked for bytes ${start}-${end}, got status ${answer.res.status} ${contentRange}`);
      }
    } catch (err) {
      out.destroy(err as Error);
      return;
    }
    if (out.destroyed) return void (body as Readable).destroy();
    // ali-oss times out a streamed GET only until its headers: a body that stalls this long breaks off.
    const idle = body as Readable & { setTimeout?(ms: number, onTimeout: () => void): void };
    idle.setTimeout?.(this.object.timeoutMs, () => idle.destroy(new Error(`OSS GetObject ${bucket}/${key}: no bytes for ${this.object.timeoutMs} ms`)));
    const received = (n: number) => {
      observer.bytes('received', n);
      onBytes(n);
    };
    pipeline(body, exactly(end - start + 1, received, `OSS GetObject ${bucket}/${key}`), out, () => {});
  }
}

/** Passes bytes on, counting them; fails at the end unless exactly `expected` came. */
function exactly(expected: number, onBytes: (n: number) => void, what: string): Transform {
  let received = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      received += chunk.length;
      if (received > expected) return callback(new Error(`${what}: more bytes than the ${expected} asked for`));
      onBytes(chunk.length);
      callback(null, chunk);
    },
    flush(callback) {
      callback(received === expected ? null : new Error(`${what}: the body ended after ${received} of ${expected} bytes`));
    },
  });
}
