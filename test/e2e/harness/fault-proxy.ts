import {
  Agent,
  createServer,
  request,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { signUrl } from './oss.js';

export type Front = 'registry' | 'oss';

/**
 * When each kind applies: status and delay when the request arrives; reset and corrupt to a 2xx response;
 * expireSignedUrls to a redirect to OSS. So a 401 challenge never uses up a body or redirect fault.
 */
export type FaultAction =
  /** Answer with this status instead of forwarding. */
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string }
  /** Forward, then close the connection after this many body bytes: the client gets a truncated body. */
  | { kind: 'reset'; afterBytes: number }
  /** Forward with `length` bytes from `offset` of the body inverted (same length). Defaults: offset 0, length 1. */
  | { kind: 'corrupt'; offset?: number; length?: number }
  /** Forward the body at no more than this many bytes per second (slow OSS, so transfers can be interrupted). */
  | { kind: 'throttle'; bytesPerSecond: number }
  /** Wait this long before forwarding. */
  | { kind: 'delay'; ms: number }
  /** Registry front: the redirect's signed OSS link is already expired. */
  | { kind: 'expireSignedUrls' };

export type FaultSpec = FaultAction & {
  front: Front;
  /** Matched against the path without query. */
  path: RegExp;
  method?: string;
  /** How many matching requests this fault applies to; default 1, Infinity for all. */
  times?: number;
};

export interface Fault {
  readonly spec: FaultSpec;
  /** How many requests it has been applied to. */
  hits: number;
}

export interface RequestRecord {
  front: Front;
  method: string;
  path: string;
  query: string;
  at: number;
  /** 0 until the response headers are sent. */
  status: number;
  /** Response body bytes sent to the client. */
  bytes: number;
  /** Request headers as received, without `authorization`. */
  headers: IncomingHttpHeaders;
  authorization: boolean;
  /** Location sent to the client (after the signed-URL rewrite). */
  location?: string;
  /** Faults applied to this request. */
  faults: FaultAction['kind'][];
  /** The whole response was sent. */
  completed: boolean;
  /** TLS SNI the client sent (HTTPS fronts only). */
  servername?: string;
}

export interface CountFilter {
  front?: Front;
  method?: string;
  status?: number;
  path?: string | RegExp;
  /** Requests for this blob: `/v2/<name>/blobs/<digest>` on the registry front, `.../<hex>/data` on the oss front. */
  blob?: string;
}

/** Faults are tried in the order added; at each point the first match with uses left applies. */
export class Faults {
  private readonly list: Fault[] = [];

  add(spec: FaultSpec): Fault {
    const fault: Fault = { spec, hits: 0 };
    this.list.push(fault);
    return fault;
  }

  clear(): void {
    this.list.length = 0;
  }

  take(front: Front, method: string, path: string, kinds: ReadonlyArray<FaultAction['kind']>): FaultAction | undefined {
    const fault = this.list.find(
      (f) =>
        kinds.includes(f.spec.kind) &&
        f.spec.front === front &&
        (f.spec.method === undefined || f.spec.method.toUpperCase() === method) &&
        f.spec.path.test(path) &&
        f.hits < (f.spec.times ?? 1),
    );
    if (fault) fault.hits++;
    return fault?.spec;
  }
}

export interface FaultProxyOptions {
  /** Distribution's origin. */
  registryTarget: string;
  /** nginx's origin, also the origin of Distribution's blob redirects. */
  ossTarget: string;
  signedUrlTtlSec?: number;
  /**
   * Serve both fronts over HTTPS, each with its own certificate, and name them by host in `registryUrl`,
   * `ossUrl` and the rewritten blob redirects (`https://<oss.host>:<port>/...`). They still listen on 127.0.0.1,
   * so clients must pin the names to it. Records carry the SNI each client sent.
   */
  tls?: { registry: FrontTls; oss: FrontTls };
  /**
   * Rewrite the realm in `WWW-Authenticate` answers of the registry front (e.g. Distribution's HTTPS realm named
   * by an unresolvable host -> the token server's plain loopback realm, for skopeo pushes).
   */
  realm?: { from: string; to: string };
}

export interface FrontTls {
  /** The name clients use (SNI and URL host). */
  host: string;
  cert: string | Buffer;
  key: string | Buffer;
}

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade'];

/** Two recording, fault-injecting fronts: one before Distribution, one before the OSS stand-in. Bodies stream. */
export class FaultProxy {
  readonly records: RequestRecord[] = [];
  readonly faults = new Faults();
  signedUrlTtlSec: number;
  private readonly agent = new Agent({ keepAlive: true });
  private readonly servers: Server[] = [];
  private registryFront = '';
  private ossFront = '';
  private readonly ports: Record<Front, number> = { registry: 0, oss: 0 };

  private constructor(private readonly opts: FaultProxyOptions) {
    this.signedUrlTtlSec = opts.signedUrlTtlSec ?? 1200;
  }

  static async start(opts: FaultProxyOptions): Promise<FaultProxy> {
    const proxy = new FaultProxy(opts);
    [proxy.registryFront, proxy.ossFront] = await Promise.all([
      proxy.listen('registry', opts.registryTarget),
      proxy.listen('oss', opts.ossTarget),
    ]);
    return proxy;
  }

  get registryUrl(): string {
    return this.registryFront;
  }

  get ossUrl(): string {
    return this.ossFront;
  }

  /** Where each front listens, as 127.0.0.1:port (what a host-name pin must point at; equals the URL host without TLS). */
  address(front: Front): string {
    return `127.0.0.1:${this.ports[front]}`;
  }

  count(filter: CountFilter | ((r: RequestRecord) => boolean) = {}): number {
    return this.filter(filter).length;
  }

  filter(filter: CountFilter | ((r: RequestRecord) => boolean) = {}): RequestRecord[] {
    return this.records.filter(typeof filter === 'function' ? filter : (r) => matches(r, filter));
  }

  /** Forget the recorded requests (faults stay). */
  reset(): void {
    this.records.length = 0;
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.servers.map((s) => {
        s.closeAllConnections();
        return new Promise<void>((resolve) => s.close(() => resolve()));
      }),
    );
    this.agent.destroy();
  }

  private async listen(front: Front, target: string): Promise<string> {
    const handler = (req: IncomingMessage, res: ServerResponse): void => void this.handle(front, target, req, res);
    const tls = this.opts.tls?.[front];
    const server: Server = tls ? createHttpsServer({ cert: tls.cert, key: tls.key }, handler) : createServer(handler);
    this.servers.push(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    const port = (server.address() as AddressInfo).port;
    this.ports[front] = port;
    return tls ? `https://${tls.host}:${port}` : `http://127.0.0.1:${port}`;
  }

  private async handle(front: Front, target: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://front');
    const { authorization, ...headers } = req.headers;
    const sni = this.opts.tls ? (req.socket as TLSSocket).servername : undefined;
    const rec: RequestRecord = {
      front,
      method,
      path: url.pathname,
      query: url.search,
      at: Date.now(),
      status: 0,
      bytes: 0,
      headers,
      authorization: authorization !== undefined,
      faults: [],
      completed: false,
      ...(typeof sni === 'string' ? { servername: sni } : {}),
    };
    this.records.push(rec);
    res.once('finish', () => (rec.completed = true));
    const take = (kinds: ReadonlyArray<FaultAction['kind']>): FaultAction | undefined => {
      const fault = this.faults.take(front, method, url.pathname, kinds);
      if (fault) rec.faults.push(fault.kind);
      return fault;
    };

    const fault = take(['status', 'delay']);

    if (fault?.kind === 'status') {
      const body = fault.body ?? '';
      rec.status = fault.status;
      res.writeHead(fault.status, { 'content-length': Buffer.byteLength(body), ...fault.headers });
      res.end(body);
      rec.bytes = Buffer.byteLength(body);
      return;
    }
    if (fault?.kind === 'delay') {
      const gone = new AbortController();
      res.once('close', () => gone.abort());
      try {
        await sleep(fault.ms, undefined, { signal: gone.signal });
      } catch {
        return;
      }
    }

    const upstreamReq = request(`${target}${req.url ?? '/'}`, {
      method,
      headers: withoutHopByHop(req.headers),
      agent: this.agent,
    });
    req.pipe(upstreamReq);
    res.once('close', () => {
      if (!rec.completed) upstreamReq.destroy();
    });
    let upstreamRes: IncomingMessage;
    try {
      upstreamRes = await new Promise<IncomingMessage>((resolve, reject) => {
        upstreamReq.once('response', resolve);
        upstreamReq.once('error', reject);
      });
    } catch (err) {
      if (!res.headersSent && !res.destroyed) {
        rec.status = 502;
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`fault-proxy: ${(err as Error).message}`);
      }
      return;
    }

    const status = upstreamRes.statusCode ?? 502;
    const outHeaders = withoutHopByHop(upstreamRes.headers);
    const location = upstreamRes.headers.location;
    if (front === 'registry' && location?.startsWith(`${this.opts.ossTarget}/`)) {
      const ttl = take(['expireSignedUrls']) ? -60 : this.signedUrlTtlSec;
      outHeaders.location = this.ossFront + signUrl(new URL(location).pathname, ttl);
    }
    const challenge = upstreamRes.headers['www-authenticate'];
    if (front === 'registry' && this.opts.realm && typeof challenge === 'string') {
      outHeaders['www-authenticate'] = challenge.replaceAll(`realm="${this.opts.realm.from}"`, `realm="${this.opts.realm.to}"`);
    }
    rec.location = outHeaders.location as string | undefined;
    rec.status = status;
    res.writeHead(status, outHeaders);
    const bodyFault = status >= 200 && status < 300 ? take(['reset', 'corrupt', 'throttle']) : undefined;
    await this.pump(upstreamRes, res, rec, bodyFault);
  }

  /** Streams the body with back-pressure, applying a corrupt, reset or throttle fault. */
  private async pump(
    src: IncomingMessage,
    res: ServerResponse,
    rec: RequestRecord,
    fault: FaultAction | undefined,
  ): Promise<void> {
    const cutAt = fault?.kind === 'reset' ? fault.afterBytes : Infinity;
    if (cutAt === 0) return cut(src, res);
    const started = Date.now();
    try {
      for await (const chunk of src) {
        let buf = chunk as Buffer;
        if (fault?.kind === 'throttle') {
          const due = started + ((rec.bytes + buf.length) / fault.bytesPerSecond) * 1000;
          if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
          if (res.destroyed) return void src.destroy();
        }
        if (fault?.kind === 'corrupt') buf = invert(buf, rec.bytes, fault.offset ?? 0, fault.length ?? 1);
        if (rec.bytes + buf.length >= cutAt) {
          const last = buf.subarray(0, cutAt - rec.bytes);
          await new Promise((resolve) => res.write(last, resolve));
          rec.bytes += last.length;
          return cut(src, res);
        }
        rec.bytes += buf.length;
        if (!res.write(buf)) {
          await new Promise<void>((resolve) => {
            const done = (): void => {
              res.off('drain', done).off('close', done);
              resolve();
            };
            res.on('drain', done).on('close', done);
          });
        }
        if (res.destroyed) return;
      }
      res.end();
    } catch {
      // Upstream died mid-body: the client must see a broken transfer, not a short success.
      res.destroy();
    }
  }
}

/**
 * Ends the connection after what was written so far (FIN, not RST, so the client surely receives every byte
 * before it; a premature end of a Content-Length or chunked body is an error for any HTTP client).
 */
function cut(src: IncomingMessage, res: ServerResponse): void {
  res.flushHeaders();
  res.socket?.destroySoon();
  src.destroy();
}

/** Copy of `buf` (at body position `pos`) with bytes in [offset, offset+length) inverted. */
function invert(buf: Buffer, pos: number, offset: number, length: number): Buffer {
  const from = Math.max(offset - pos, 0);
  const to = Math.min(offset + length - pos, buf.length);
  if (from >= to) return buf;
  const out = Buffer.from(buf);
  for (let i = from; i < to; i++) out[i] = (out[i] ?? 0) ^ 0xff;
  return out;
}

function withoutHopByHop(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out = { ...headers };
  for (const h of HOP_BY_HOP) delete out[h];
  return out;
}

function matches(r: RequestRecord, f: CountFilter): boolean {
  if (f.front !== undefined && r.front !== f.front) return false;
  if (f.method !== undefined && r.method !== f.method.toUpperCase()) return false;
  if (f.status !== undefined && r.status !== f.status) return false;
  if (typeof f.path === 'string' && r.path !== f.path) return false;
  if (f.path instanceof RegExp && !f.path.test(r.path)) return false;
  if (f.blob !== undefined) {
    const hex = f.blob.replace(/^sha256:/, '');
    const blobPath = r.front === 'registry' ? `/blobs/sha256:${hex}` : `/${hex}/data`;
    if (!r.path.endsWith(blobPath)) return false;
  }
  return true;
}
