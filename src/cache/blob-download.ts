import type { Logger } from 'pino';
import { RegistryError } from '../http/errors.js';
import { isNetworkError, networkError } from '../upstream/errors.js';
import type { SegmentPlan } from '../upstream/client.js';
import type { UpstreamBody } from '../upstream/transport.js';

/** An upstream's answer for a byte range: where its body starts, the blob's size if said, whether it is a 206. */
export interface SourceAnswer {
  start: number;
  size: number | null;
  partial?: boolean;
  body: UpstreamBody;
}

/** Where a fill gets its bytes: each call asks the upstream afresh for a byte range of the blob. */
export interface BlobSource {
  label: string;
  /** Told of every chunk received from the upstream. */
  onBytes?: (n: number) => void;
  /** Bytes from start to end (inclusive; to the last byte without end). The answer says where its body starts. */
  open(range: { start: number; end?: number }, signal: AbortSignal): Promise<SourceAnswer>;
  /** Lets a fill fetch ranges of the blob over several connections at once (segmented-download.ts). */
  segments?: SegmentPlan;
}

/** Where a download puts what it receives. */
export interface DownloadSink {
  /** The upstream answered the first request: the blob's size, if it said. The download waits for this. */
  started(size: number | null): void | Promise<void>;
  /** New bytes at offset; the download waits for this (the sink sets the pace). */
  received(offset: number, bytes: Buffer): Promise<void>;
}

export interface DownloadOptions {
  signal: AbortSignal;
  /** How many times a broken transfer is resumed with Range before the download gives up. */
  maxResumes: number;
  log: Logger;
  /** The first byte wanted (0 unless the bytes before it are in already). */
  from?: number;
}

/**
 * Downloads a blob from its start, sequentially: a transfer that breaks or ends early is resumed with a Range
 * request from the first byte not received yet (bytes an upstream sends again are skipped). Resolves with the
 * number of bytes received once all are in.
 */
export async function downloadBlob(digest: string, source: BlobSource, sink: DownloadSink, opts: DownloadOptions): Promise<number> {
  const fail = (message: string) => blobFailure(source.label, digest, message);
  let size: number | null = null;
  let received = opts.from ?? 0;
  for (let resumes = 0; ; resumes++) {
    const answer = await source.open({ start: received }, opts.signal);
    if (resumes === 0) {
      size = answer.size;
      try {
        await sink.started(size);
      } catch (err) {
        await answer.body.cancel().catch(() => {});
        throw err;
      }
    } else if (answer.size !== null && size !== null && answer.size !== size) {
      await answer.body.cancel().catch(() => {});
      throw fail('changed size while resuming');
    }
    try {
      for await (const bytes of bodyFrom(answer, received, opts.signal)) {
        if (size !== null && received + bytes.byteLength > size) throw fail('is longer than announced');
        source.onBytes?.(bytes.byteLength);
        const offset = received;
        received += bytes.byteLength;
        await sink.received(offset, bytes);
      }
    } catch (err) {
      if (!isNetworkError(err) || opts.signal.aborted || resumes >= opts.maxResumes) throw wrapNetwork(err, source.label, digest);
      // What arrived before the break is kept already: the resume starts after it.
      opts.log.warn({ digest, offset: received, reason: (err as Error).message }, 'blob transfer broke; resuming');
      continue;
    }
    if (size === null || received >= size) return received;
    if (resumes >= opts.maxResumes) throw fail(`ended early at ${received} of ${size} bytes`);
    opts.log.warn({ digest, offset: received }, 'blob transfer ended early; resuming');
  }
}

/**
 * An answer's body as Buffers from blob offset `from` on (bytes before it that the upstream sent again are
 * skipped), until it ends or signal aborts.
 */
export async function* bodyFrom(answer: SourceAnswer, from: number, signal: AbortSignal): AsyncGenerator<Buffer> {
  let skip = from - answer.start;
  for await (const chunk of untilAborted(answer.body, signal)) {
    let bytes = chunk;
    if (skip > 0) {
      const n = Math.min(skip, bytes.byteLength);
      skip -= n;
      bytes = bytes.subarray(n);
      if (bytes.byteLength === 0) continue;
    }
    yield Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
}

/** A source whose first open() is answered with `answer` (already received), the later ones by source. */
export function answeredFirst(source: BlobSource, answer: SourceAnswer): BlobSource {
  let first: SourceAnswer | null = answer;
  return {
    label: source.label,
    ...(source.onBytes ? { onBytes: source.onBytes } : {}),
    open: async (range, signal) => {
      const given = first;
      first = null;
      return given ?? source.open(range, signal);
    },
  };
}

export function blobFailure(label: string, digest: string, message: string): RegistryError {
  return new RegistryError('UPSTREAM_BAD_RESPONSE', `${label}: blob ${digest} ${message}`);
}

/**
 * The body's chunks until it ends or signal aborts (then it throws the signal's reason at once, even while a
 * chunk is awaited, and the body is cancelled: the upstream stops sending).
 */
async function* untilAborted(body: UpstreamBody, signal: AbortSignal): AsyncGenerator<Uint8Array> {
  const chunks = body[Symbol.asyncIterator]();
  let ended = false;
  try {
    for (;;) {
      signal.throwIfAborted();
      const next = await nextOrAbort(chunks, signal);
      if (next.done) return void (ended = true);
      yield next.value;
    }
  } finally {
    // After an abort a read may still be pending: the body is cancelled once it settles, without waiting.
    const closing = ended ? undefined : Promise.resolve(chunks.return?.()).catch(() => {});
    if (!signal.aborted) await closing;
  }
}

/**
 * The next chunk, or the signal's reason once it aborts. Not Promise.race with one long-lived 'aborted' promise:
 * each race leaves a reaction on it holding the chunk it resolved with, so a blob's every chunk stayed in memory
 * until the download ended (a 1 GiB cold blob took 1.1 GiB).
 */
function nextOrAbort(chunks: AsyncIterator<Uint8Array>, signal: AbortSignal): Promise<IteratorResult<Uint8Array>> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    chunks.next().then(
      (next) => {
        signal.removeEventListener('abort', onAbort);
        resolve(next);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

export function wrapNetwork(err: unknown, label: string, digest: string): Error {
  if (err instanceof RegistryError) return err;
  if (isNetworkError(err)) return networkError(label, `GET blob ${digest}`, err);
  return err instanceof Error ? err : new Error(String(err));
}
