import { randomUUID, sign, X509Certificate, type KeyObject, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { runOk } from './proc.js';

export interface TokenUser {
  password: string;
  /** Repository actions this user may be granted, e.g. ['pull'] or ['pull', 'push']. */
  actions: string[];
}

export interface TokenServerOptions {
  /** Where the signing key and certificate are written. */
  dir: string;
  users: Record<string, TokenUser>;
  issuer: string;
  tokenLifetimeSec?: number;
  /**
   * Also serve HTTPS (on another 127.0.0.1 port) with this certificate, under the name `host`: `tlsUrl` and
   * `tlsRealm` are then `https://<host>:<port>`. The plain listener stays (for pushes, which cannot pin names).
   */
  tls?: { host: string; cert: string | Buffer; key: string | Buffer };
}

export interface Access {
  type: string;
  name: string;
  actions: string[];
}

export interface IssuedToken {
  user: string;
  service: string;
  /** The scope parameters as requested. */
  scope: string[];
  access: Access[];
  token: string;
  at: Date;
  /** TLS SNI the client sent; undefined over plain HTTP. */
  servername?: string;
}

export interface TokenRequest {
  user: string | undefined;
  scope: string[];
  status: number;
  /** TLS SNI the client sent; undefined over plain HTTP. */
  servername?: string;
  /** Whether the request came over the HTTPS listener. */
  tls: boolean;
}

/** Docker token-auth server issuing ES256 JWTs whose x5c names a self-signed certificate. */
export class TokenServer {
  readonly issued: IssuedToken[] = [];
  /** Every request to /auth, granted or not. */
  readonly requests: TokenRequest[] = [];
  /** Answer 401 to everyone (credentials revoked / token cannot be renewed). */
  refuseAll = false;
  tokenLifetimeSec: number;
  private secureUrl: string | undefined;
  private readonly failures: number[] = [];
  private readonly servers: Server[];

  private constructor(
    server: Server,
    readonly url: string,
    readonly certPath: string,
    private readonly key: KeyObject,
    private readonly certDer: string,
    private readonly users: Record<string, TokenUser>,
    readonly issuer: string,
    lifetimeSec: number,
  ) {
    this.tokenLifetimeSec = lifetimeSec;
    this.servers = [server];
  }

  static async start(opts: TokenServerOptions): Promise<TokenServer> {
    const keyPath = join(opts.dir, 'token-signer.key');
    const certPath = join(opts.dir, 'token-signer.crt');
    // Distribution verifies the x5c chain against auth.token.rootcertbundle; a self-signed cert is its own root.
    await runOk('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=acr-test-token-signer',
    ]);
    const [keyPem, certPem] = await Promise.all([readFile(keyPath), readFile(certPath)]);
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    const { port } = server.address() as AddressInfo;
    const ts = new TokenServer(
      server,
      `http://127.0.0.1:${port}`,
      certPath,
      createPrivateKey(keyPem),
      new X509Certificate(certPem).raw.toString('base64'),
      opts.users,
      opts.issuer,
      opts.tokenLifetimeSec ?? 60,
    );
    server.on('request', (req, res) => ts.handle(req, res));
    if (opts.tls) {
      const secure = createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, (req, res) => ts.handle(req, res));
      ts.servers.push(secure);
      try {
        await new Promise<void>((resolve, reject) => {
          secure.once('error', reject);
          secure.listen(0, '127.0.0.1', resolve);
        });
      } catch (err) {
        await ts.stop();
        throw err;
      }
      ts.secureUrl = `https://${opts.tls.host}:${(secure.address() as AddressInfo).port}`;
    }
    return ts;
  }

  /** The plain-HTTP realm. */
  get realm(): string {
    return `${this.url}/auth`;
  }

  /** `https://<tls.host>:<port>` when started with `tls`. */
  get tlsUrl(): string | undefined {
    return this.secureUrl;
  }

  /** The HTTPS realm, named by host (`tls.host`), when started with `tls`. */
  get tlsRealm(): string | undefined {
    return this.tlsUrl && `${this.tlsUrl}/auth`;
  }

  /** The next `times` token requests fail with `code`. */
  status(code: number, times = 1): void {
    for (let i = 0; i < times; i++) this.failures.push(code);
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.servers.map((s) => {
        s.closeAllConnections();
        return new Promise<void>((resolve) => s.close(() => resolve()));
      }),
    );
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    if (req.method !== 'GET' || url.pathname !== '/auth') {
      reply(res, 404, { errors: [{ code: 'NOT_FOUND', message: 'not found' }] });
      return;
    }
    const scope = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
    const service = url.searchParams.get('service') ?? '';
    const user = basicUser(req.headers.authorization);
    const tls = 'encrypted' in req.socket && (req.socket as TLSSocket).encrypted;
    const sni = tls ? (req.socket as TLSSocket).servername : undefined;
    const servername = typeof sni === 'string' ? sni : undefined;
    const answer = (status: number, body: unknown): void => {
      this.requests.push({ user: user?.name, scope, status, tls, ...(servername !== undefined ? { servername } : {}) });
      reply(res, status, body);
    };

    const injected = this.failures.shift();
    if (injected !== undefined) {
      answer(injected, { errors: [{ code: errorCode(injected), message: `injected status ${injected}` }] });
      return;
    }
    const account = user && this.users[user.name];
    if (this.refuseAll || !account || account.password !== user.password) {
      answer(401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] });
      return;
    }
    const access = scope.flatMap((s) => grant(s, account.actions));
    const now = Math.floor(Date.now() / 1000);
    const token = this.jwt({
      iss: this.issuer,
      sub: user.name,
      aud: service,
      exp: now + this.tokenLifetimeSec,
      nbf: now,
      iat: now,
      jti: randomUUID(),
      access,
    });
    this.issued.push({
      user: user.name, service, scope, access, token, at: new Date(now * 1000),
      ...(servername !== undefined ? { servername } : {}),
    });
    answer(200, {
      token,
      access_token: token,
      expires_in: this.tokenLifetimeSec,
      issued_at: new Date(now * 1000).toISOString(),
    });
  }

  private jwt(claims: object): string {
    const header = { alg: 'ES256', typ: 'JWT', x5c: [this.certDer] };
    const input = `${b64url(header)}.${b64url(claims)}`;
    const signature = sign('sha256', Buffer.from(input), { key: this.key, dsaEncoding: 'ieee-p1363' });
    return `${input}.${signature.toString('base64url')}`;
  }
}

/** `repository:<name>:<actions>`; the name may contain ':' (host:port), so split at the first and last colon. */
function grant(scope: string, allowed: string[]): Access[] {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first < 0 || last === first) return [];
  const type = scope.slice(0, first);
  const name = scope.slice(first + 1, last);
  const actions = scope.slice(last + 1).split(',').filter((a) => type === 'repository' && allowed.includes(a));
  return [{ type, name, actions }];
}

function basicUser(header: string | undefined): { name: string; password: string } | undefined {
  const m = /^Basic\s+(\S+)$/i.exec(header ?? '');
  if (!m?.[1]) return undefined;
  const decoded = Buffer.from(m[1], 'base64').toString();
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { name: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function errorCode(status: number): string {
  if (status === 401) return 'UNAUTHORIZED';
  if (status === 403) return 'DENIED';
  if (status === 429) return 'TOOMANYREQUESTS';
  return 'UNAVAILABLE';
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...(status === 401 ? { 'www-authenticate': 'Basic realm="acr-test-token"' } : {}),
  });
  res.end(text);
}

function b64url(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}
