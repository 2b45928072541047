import { Readable } from 'node:stream';
import type { FillWindow } from './fill-window.js';

const READ_CHUNK = 256 * 1024;

/** Where the fill a reader follows is. */
export interface FillProgress {
  readonly digest: string;
  readonly state: 'starting' | 'running' | 'done' | 'failed';
  readonly error: Error | null;
  readonly size: number | null;
  readonly received: number;
  /** Every byte is in and matches the digest. */
  readonly isVerified: boolean;
}

/** What one reader is given of the fill it follows. */
export interface FillFollower {
  readonly memory: FillWindow;
  /** Reads bytes already written, older than the memory window. */
  readBack(buffer: Buffer, position: number): Promise<number>;
  /** A reader moved on to `at` (a relay may let go of what all readers passed). */
  moved(at: number): void;
  /** The reader is gone. */
  detached(): void;
  /** Calls listener whenever any of the above moves; returns the unsubscribe. */
  onChange(listener: () => void): () => void;
}

/**
 * A stream of bytes start..end (inclusive; end defaults to the last byte) following a fill: from memory when
 * they are recent, read back from the writer when older. Everything but the last byte may be read while the
 * fill runs: the last one waits for verification.
 */
export function fillReader(fill: FillProgress, follower: FillFollower, start: number, end: number | undefined): Readable {
  let position = start;
  let reading = false;
  const last = () => (end !== undefined ? end : fill.isVerified ? fill.size! - 1 : Infinity);
  // Node calls read() once and then waits for a push; when the fill has no new bytes yet, pump returns
  // without pushing and the fill's next 'change' starts it again.
  let again = false;
  const kick = (): void => {
    if (stream.destroyed) return;
    if (reading) {
      again = true;
      return;
    }
    reading = true;
    again = false;
    void pump().finally(() => {
      reading = false;
      if (again) kick();
    });
  };
  const stream = new Readable({
    highWaterMark: READ_CHUNK,
    read: kick,
    destroy(err, cb) {
      unsubscribe();
      follower.detached();
      cb(err);
    },
  });
  let waiting = false;
  const onChange = () => {
    if (waiting || reading) kick();
  };
  const unsubscribe = follower.onChange(onChange);

  async function pump(): Promise<void> {
    waiting = false;
    for (;;) {
      if (fill.state === 'failed') return void stream.destroy(fill.error ?? new Error('fill failed'));
      const available = fill.isVerified ? fill.size! : Math.max(0, fill.received - 1);
      const stop = Math.min(last() + 1, available);
      if (position > last()) return void stream.push(null);
      if (position >= stop) {
        if (fill.isVerified) return void stream.push(null);
        waiting = true;
        return;
      }
      let chunk: Buffer;
      if (position >= follower.memory.start) {
        chunk = follower.memory.slice(position, stop - position);
      } else {
        const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, stop - position, follower.memory.start - position));
        try {
          const bytesRead = await follower.readBack(buf, position);
          if (bytesRead === 0) throw new Error(`blob ${fill.digest}: the written bytes end before byte ${position}`);
          chunk = bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
        } catch (err) {
          return void stream.destroy(err as Error);
        }
      }
      if (stream.destroyed) return;
      position += chunk.length;
      follower.moved(position);
      if (!stream.push(chunk)) return;
    }
  }
  return stream;
}
