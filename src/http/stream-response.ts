import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { Readable, type Writable } from 'node:stream';
import type { Context } from 'hono';
import type { ByteRange } from './range.js';
import type { Env } from './middleware.js';

/** A body that can be read as a stream or written straight into a socket-backed response. */
export interface StreamedBody {
  stream(range?: ByteRange): Readable;
  /** Writes the bytes to a socket or http.ServerResponse and ends it (destroys it if the body fails). */
  sendTo(out: Writable, range: ByteRange | undefined, onBytes: (n: number) => void): void;
}

/**
 * A streamed response. Under @hono/node-server the body is written straight into the Node response: a web
 * ReadableStream in between cost about a third of the warm-blob throughput (bench scenario 1). Elsewhere
 * (app.request() in tests) it is an ordinary Response.
 */
export function streamResponse(
  c: Context<Env>,
  status: number,
  headers: Record<string, string>,
  body: StreamedBody,
  range: ByteRange | undefined,
  onBytes: (n: number) => void,
): Response {
  const outgoing = c.env?.outgoing;
  if (!outgoing) {
    const stream = body.stream(range).on('data', (chunk: Buffer) => onBytes(chunk.length));
    return new Response(Readable.toWeb(stream) as ReadableStream<Uint8Array>, { status, headers });
  }
  outgoing.writeHead(status, headers);
  body.sendTo(outgoing, range, onBytes);
  c.set('sentStatus', status);
  return RESPONSE_ALREADY_SENT;
}

/**
 * A response with a body held in memory, written straight into the Node response under @hono/node-server: a
 * Response object costs Headers objects per request there. hono answers HEAD by running the GET handler and
 * wrapping its Response in a new one, which node-server then writes; so for HEAD the headers are set on the Node
 * response and the Response carries only the status (Node merges the two when node-server writes the head).
 */
export function bufferedResponse(c: Context<Env>, status: number, headers: Record<string, string>, body: Uint8Array | string | null): Response {
  const outgoing = c.env?.outgoing;
  if (!outgoing) return new Response(body as BodyInit | null, { status, headers });
  if (c.req.method === 'HEAD') {
    for (const name in headers) outgoing.setHeader(name, headers[name]!);
    return new Response(null, { status });
  }
  outgoing.writeHead(status, headers);
  outgoing.end(body ?? undefined);
  c.set('sentStatus', status);
  return RESPONSE_ALREADY_SENT;
}
