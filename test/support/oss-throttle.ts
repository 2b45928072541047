import type { ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

export interface SendFaults {
  /** Reset the connection after this many body bytes. */
  resetAfter: number | undefined;
  /** Send at most this many body bytes per second. */
  bytesPerSecond: number | null;
}

const TICKS_PER_SECOND = 20;

function write(out: ServerResponse, chunk: Buffer): Promise<void> {
  return new Promise((resolve) => {
    if (out.destroyed) return resolve();
    out.write(chunk, () => resolve());
  });
}

/** Writes a response on the raw Node response so a test can slow it down or cut it off mid-body. */
export async function sendThrottled(out: ServerResponse, status: number, headers: Record<string, string>, body: Buffer, faults: SendFaults): Promise<void> {
  out.writeHead(status, headers);
  const limit = Math.min(body.length, faults.resetAfter ?? body.length);
  const chunkSize = faults.bytesPerSecond === null ? Math.max(1, limit) : Math.max(1, Math.floor(faults.bytesPerSecond / TICKS_PER_SECOND));
  for (let offset = 0; offset < limit && !out.destroyed; offset += chunkSize) {
    const chunk = body.subarray(offset, Math.min(limit, offset + chunkSize));
    await write(out, chunk);
    if (faults.bytesPerSecond !== null) await sleep((chunk.length / faults.bytesPerSecond) * 1000);
  }
  if (faults.resetAfter !== undefined) out.socket?.resetAndDestroy();
  else out.end();
}
