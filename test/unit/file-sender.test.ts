// sendFile writes a file range into a real HTTP response with reused buffers; these tests run it behind a
// node:http server on 127.0.0.1 and read it with a real client.
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { createServer, get, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ReadBuffers, sendFile } from '../../src/cache/fs-file-sender.js';
import { eventually } from '../support/eventually.js';

/** Counts the buffers it had to allocate. */
class CountingBuffers extends ReadBuffers {
  allocated = 0;
  readonly #seen = new Set<Buffer>();
  override take(): Buffer {
    const b = super.take();
    if (!this.#seen.has(b)) {
      this.#seen.add(b);
      this.allocated++;
    }
    return b;
  }
}

let dir: string;
let file: string;
let content: Buffer;
let server: Server | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'acr-sender-'));
  file = join(dir, 'blob');
  content = randomBytes(8 * 1024 * 1024 + 123);
  await writeFile(file, content);
});
afterEach(async () => {
  if (server) await new Promise((r) => server!.close(r));
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** Serves every request with handler; resolves with the base URL. */
async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  server = createServer(handler);
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/**
 * GET with node:http, so a cut-short body is seen as such: the bytes received and whether the response completed
 * (false too when the connection dropped before any response).
 */
function download(url: string, { stopAfter }: { stopAfter?: number } = {}): Promise<{ body: Buffer; complete: boolean }> {
  return new Promise((resolve) => {
    get(url, (res) => {
      const chunks: Buffer[] = [];
      let n = 0;
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        n += c.length;
        if (stopAfter !== undefined && n >= stopAfter) res.destroy();
      });
      res.on('end', () => resolve({ body: Buffer.concat(chunks), complete: res.complete }));
      res.on('close', () => resolve({ body: Buffer.concat(chunks), complete: res.complete }));
    }).on('error', () => resolve({ body: Buffer.alloc(0), complete: false }));
  });
}

describe('sendFile', () => {
  it('sends a whole file and a range byte for byte, reusing a few buffers for many chunks', async () => {
    const buffers = new CountingBuffers(64 * 1024);
    let sent = 0;
    const url = await serve(async (req, res) => {
      const [start, end] = req.url === '/range' ? [1000, 5_000_000] : [0, content.length - 1];
      res.writeHead(200, { 'content-length': String(end - start + 1) });
      const handle = await open(file);
      await sendFile(handle, start, end, res, buffers, (n) => (sent += n));
      await handle.close();
    });
    const whole = await download(`${url}/`);
    expect(whole.complete).toBe(true);
    expect(whole.body.equals(content)).toBe(true);
    expect(sent).toBe(content.length);
    const range = await download(`${url}/range`);
    expect(range.body.equals(content.subarray(1000, 5_000_001))).toBe(true);
    // 8 MiB in 64 KiB reads is 129 chunks; without reuse every chunk would be a new buffer.
    expect(buffers.allocated).toBeLessThan(16);
  });

  it('stops reading when the client goes away', async () => {
    const buffers = new ReadBuffers(64 * 1024);
    let sent = 0;
    let finished = false;
    const url = await serve(async (_req, res) => {
      res.writeHead(200, { 'content-length': String(content.length) });
      const handle = await open(file);
      await sendFile(handle, 0, content.length - 1, res, buffers, (n) => (sent += n));
      await handle.close();
      finished = true;
    });
    const partial = await download(url, { stopAfter: 256 * 1024 });
    expect(partial.complete).toBe(false);
    await eventually(() => expect(finished).toBe(true));
    // The kernel's socket buffers take some bytes after the client left; far from the whole file.
    expect(sent).toBeLessThan(content.length / 2);
  });

  it('cuts the response short when the file is shorter than the range or cannot be read', async () => {
    const buffers = new ReadBuffers(64 * 1024);
    const url = await serve(async (req, res) => {
      res.writeHead(200, { 'content-length': String(content.length + 10) });
      const handle = await open(file);
      if (req.url === '/closed') await handle.close();
      await sendFile(handle, 0, content.length + 9, res, buffers, () => {});
      if (req.url !== '/closed') await handle.close();
    });
    const short = await download(`${url}/short`);
    expect(short.complete).toBe(false);
    expect(short.body.equals(content.subarray(0, short.body.length))).toBe(true);
    const unreadable = await download(`${url}/closed`);
    expect(unreadable.complete).toBe(false);
    expect(unreadable.body.length).toBe(0);
  });
});
