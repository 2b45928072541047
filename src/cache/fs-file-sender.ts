import type { FileHandle } from 'node:fs/promises';
import type { Writable } from 'node:stream';

/**
 * Read buffers of one size, reused once a socket has taken their bytes. Serving a cached blob then allocates
 * nothing per chunk: a fresh 512 KiB buffer per read cost page faults and garbage collection that halved
 * warm-blob throughput at 16 clients (bench scenario 1).
 */
export class ReadBuffers {
  readonly #free: Buffer[] = [];

  constructor(
    readonly size = 512 * 1024,
    private readonly keep = 32,
  ) {}

  take(): Buffer {
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }

  give(buffer: Buffer): void {
    if (this.#free.length < this.keep) this.#free.push(buffer);
  }
}

/**
 * Writes bytes start..end (inclusive) of an open file to out and ends it. out must be a socket or an
 * http.ServerResponse: a buffer goes back to `buffers` only when out's write callback says the kernel has its
 * bytes. The next chunk is read while the current one drains (one read ahead, so memory stays at two buffers per
 * client); stops when out closes; a read error or a file shorter than expected destroys out, so the client sees a
 * body cut short.
 */
export async function sendFile(
  handle: FileHandle,
  start: number,
  end: number,
  out: Writable,
  buffers: ReadBuffers,
  onBytes: (n: number) => void,
): Promise<void> {
  const readAt = async (position: number): Promise<{ buffer: Buffer; bytes: number }> => {
    const buffer = buffers.take();
    const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, end - position + 1), position);
    if (bytesRead === 0) throw new Error(`file ended at byte ${position}, before byte ${end}`);
    return { buffer, bytes: bytesRead };
  };
  let position = start;
  let next = position <= end ? readAt(position) : null;
  try {
    while (next && !out.destroyed) {
      const { buffer, bytes } = await next;
      position += bytes;
      next = position <= end ? readAt(position) : null;
      onBytes(bytes);
      const more = out.write(bytes === buffer.length ? buffer : buffer.subarray(0, bytes), (err) => {
        if (!err) buffers.give(buffer);
      });
      if (!more && !(await drained(out))) return;
    }
    if (!out.destroyed) out.end();
  } catch (err) {
    out.destroy(err as Error);
  } finally {
    // The caller closes the file when this resolves: no read may still be running then.
    await next?.catch(() => {});
  }
}

/** true on 'drain', false if out closes first. */
function drained(out: Writable): Promise<boolean> {
  if (out.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    const settle = (ok: boolean) => () => {
      out.off('drain', onDrain);
      out.off('close', onClose);
      resolve(ok);
    };
    const onDrain = settle(true);
    const onClose = settle(false);
    out.on('drain', onDrain);
    out.on('close', onClose);
  });
}
