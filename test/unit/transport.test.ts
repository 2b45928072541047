import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { isNetworkError } from '../../src/upstream/errors.js';
import { createTransport, type Transport } from '../../src/upstream/transport.js';

let server: Server | undefined;
let transport: Transport | undefined;
afterEach(async () => {
  await transport?.close();
  server?.closeAllConnections();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = transport = undefined;
});

/** A loopback server; `connections` counts the TCP connections it accepted. */
async function serve(handler: Parameters<typeof createServer>[1]): Promise<{ url: string; connections: () => number }> {
  let accepted = 0;
  server = createServer(handler);
  server.on('connection', () => accepted++);
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections: () => accepted };
}

const options = { connectTimeoutMs: 2000, responseTimeoutMs: 2000, idleTimeoutMs: 2000, proxy: '' };
const collect = async (body: AsyncIterable<Uint8Array>) => {
  const parts: Buffer[] = [];
  for await (const chunk of body) parts.push(Buffer.from(chunk));
  return Buffer.concat(parts);
};

describe('transport', () => {
  it('returns the answer as sent: status, headers by any case, the body; redirects are not followed', async () => {
    const seen: Record<string, string | undefined>[] = [];
    const { url } = await serve((req, res) => {
      seen.push({ ua: req.headers['user-agent'], auth: req.headers.authorization, encoding: req.headers['accept-encoding'] });
      if (req.url === '/moved') return void res.writeHead(307, { location: '/elsewhere' }).end();
      res.setHeader('x-multi', ['a', 'b']);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '11' }).end('{"ok":true}');
    });
    transport = createTransport(options);
    const res = await transport.fetch(`${url}/doc`, { method: 'GET', headers: { authorization: 'Bearer t' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('Content-Type')).toBe('application/json');
    expect(res.headers.get('x-multi')).toBe('a, b');
    expect(res.headers.get('absent')).toBeNull();
    expect((await collect(res.body!)).toString()).toBe('{"ok":true}');
    const moved = await transport.fetch(`${url}/moved`, { method: 'GET', headers: {} });
    expect(moved.status).toBe(307);
    expect(moved.headers.get('location')).toBe('/elsewhere');
    await moved.body!.cancel();
    expect(seen).toEqual([
      { ua: 'acr-mirror', auth: 'Bearer t', encoding: undefined },
      { ua: 'acr-mirror', auth: undefined, encoding: undefined },
    ]);
  });

  it('keeps the connection when a small body is cancelled before it has all arrived', async () => {
    // The rest of the error page comes later: cancelling must read it, not abort the exchange.
    const { url, connections } = await serve((_req, res) => {
      res.writeHead(401, { 'content-length': '10' }).write('nope ');
      setTimeout(() => res.end('nope\n'), 30);
    });
    transport = createTransport(options);
    for (let i = 0; i < 3; i++) {
      const res = await transport.fetch(`${url}/x`, { method: 'GET', headers: {} });
      expect(res.status).toBe(401);
      await res.body!.cancel();
      await new Promise((resolve) => setImmediate(resolve)); // undici pools the connection just after the body ends
    }
    expect(connections()).toBe(1);
  });

  it('a connection reset mid-body fails the read with a network error, and is harmless once nobody reads', async () => {
    const { url } = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': String(1024 * 1024) });
      res.write(Buffer.alloc(64 * 1024));
      setTimeout(() => (res.socket as Socket).destroy(), 20);
    });
    transport = createTransport(options);
    const read = await transport.fetch(`${url}/a`, { method: 'GET', headers: {} });
    const err = await collect(read.body!).then(() => null, (e: unknown) => e);
    expect(isNetworkError(err)).toBe(true);
    // Left after the first chunk: the abort and the reset must not become an unhandled 'error' event (it would
    // end the process).
    const left = await transport.fetch(`${url}/b`, { method: 'GET', headers: {} });
    let firstChunk = 0;
    for await (const chunk of left.body!) {
      firstChunk = chunk.byteLength;
      break;
    }
    expect(firstChunk).toBeGreaterThan(0);
    // the reset comes 20 ms after the first chunk: give an unhandled 'error' event the time to surface
    await new Promise((resolve) => setTimeout(resolve, 100));
  });
});
