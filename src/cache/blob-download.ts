import type { Logger } from 'pino';
import { RegistryError } from '../http/errors.js';
import { isNetworkError, networkError } from '../upstream/errors.js';
import type { UpstreamBody } from '../upstream/transport.js';

/** Where a fill gets its bytes: each call asks the upstream afresh for a byte range of the blob. */
export interface BlobSource {
  label: string;
  /** Told of every chunk received from the upstream. */
  onBytes?: (n: number) => void;
  /** Bytes from start to end (inclusive; to the last byte without end). The answer says where its body starts. */
  open(range: { start: number; end?: number }, signal: AbortSignal): Promise<{ start: number; size: number | null; body: UpstreamBody }>;
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
}

/**
 * Downloads a blob from its start, sequentially: a transfer that breaks or ends early is resumed with a Range
 * request from the first byte not received yet (bytes an upstream sends again are skipped). Resolves with the
 * number of bytes received once all are in.
 */
export async function downloadBlob(digest: string, source: BlobSource, sink: DownloadSink, opts: DownloadOptions): Promise<number> {
  const fail = (message: string) => new RegistryError('UPSTREAM_BAD_RESPONSE', `${source.label}: blob ${digest} ${message}`);
  let size: number | null = null;
  let received = 0;
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
    let skip = received - answer.start;
    try {
      for await (const chunk of untilAborted(answer.body, opts.signal)) {
        let bytes = chunk;
        if (skip > 0) {
          const n = Math.min(skip, bytes.byteLength);
          skip -= n;
          bytes = bytes.subarray(n);
          if (bytes.byteLength === 0) continue;
        }
        if (size !== null && received + bytes.byteLength > size) throw fail('is longer than announced');
        source.onBytes?.(bytes.byteLength);
        const offset = received;
        received += bytes.byteLength;
        await sink.received(offset, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
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
 * The body's chunks until it ends or signal aborts (then it throws the signal's reason at once, even while a
 * chunk is awaited, and the body is cancelled: the upstream stops sending).
 */
async function* untilAborted(body: UpstreamBody, signal: AbortSignal): AsyncGenerator<Uint8Array> {
  const chunks = body[Symbol.asyncIterator]();
  let onAbort!: () => void;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  aborted.catch(() => {});
  let ended = false;
  try {
    for (;;) {
      signal.throwIfAborted();
      const next = await Promise.race([chunks.next(), aborted]);
      if (next.done) return void (ended = true);
      yield next.value;
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    // After an abort a read may still be pending: the body is cancelled once it settles, without waiting.
    const closing = ended ? undefined : Promise.resolve(chunks.return?.()).catch(() => {});
    if (!signal.aborted) await closing;
  }
}

function wrapNetwork(err: unknown, label: string, digest: string): Error {
  if (err instanceof RegistryError) return err;
  if (isNetworkError(err)) return networkError(label, `GET blob ${digest}`, err);
  return err instanceof Error ? err : new Error(String(err));
}
