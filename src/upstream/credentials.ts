import { createRequire } from 'node:module';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { rootCertificates } from 'node:tls';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Credentials, TemporaryCredentialSettings } from '../config/load.js';
import { Secret } from '../config/secret.js';
import { RegistryError } from '../http/errors.js';
import { SingleFlight } from '../util/single-flight.js';
import { HostPins } from './host-pins.js';

/** Where an upstream's login comes from: fixed, or exchanged for ACR's temporary password on demand. */
export interface CredentialSource {
  current(): Promise<Credentials | undefined>;
  /** The registry refused the credentials: drop them so the next call fetches fresh ones (if it can). */
  refused(): void;
}

export class StaticCredentials implements CredentialSource {
  constructor(private readonly credentials: Credentials | undefined) {}
  async current() {
    return this.credentials;
  }
  refused() {}
}

// CommonJS packages without usable ESM types: loaded with require and typed here by what is used.
const require = createRequire(import.meta.url);
interface AliyunCredentialModel {
  accessKeyId: string;
  accessKeySecret: string;
  securityToken?: string;
}
interface AliyunCredentialsModule {
  default: new (config: unknown) => { getCredential(): Promise<AliyunCredentialModel> };
  Config: new (config: Record<string, unknown>) => unknown;
}
interface PopClientConfig {
  endpoint: string;
  apiVersion: string;
  credentialsProvider: { getCredentials(): Promise<AliyunCredentialModel> };
}
interface PopModule {
  RPCClient: new (config: PopClientConfig) => { request(action: string, params: Record<string, unknown>, opts: Record<string, unknown>): Promise<unknown> };
  ROAClient: new (config: PopClientConfig) => {
    request(method: string, path: string, query: Record<string, unknown>, body: string, headers: Record<string, string>, opts: Record<string, unknown>): Promise<unknown>;
  };
}

export interface TemporaryCredentialDeps {
  now: () => number;
  log: Logger;
  /** Applies the upstream's host pins and CA to the OpenAPI endpoint too. */
  hosts?: Record<string, string>;
  caFile?: string;
  timeoutMs: number;
}

/**
 * ACR's temporary login (user cr_temp_user, a password valid about an hour) obtained with an AccessKey pair
 * or the ECS instance's RAM role through the GetAuthorizationToken OpenAPI, signed by Alibaba Cloud's SDK:
 * Personal Edition `GET /tokens` (2016-06-07, ROA), Enterprise Edition `GetAuthorizationToken` with
 * InstanceId (2018-12-01, RPC). Renewed `refresh_before` its expiry, one request at a time.
 */
export class AcrTemporaryCredentials implements CredentialSource {
  #cached: { credentials: Credentials; expiresAt: number } | null = null;
  readonly #flight = new SingleFlight<'login', Credentials>();
  readonly #provider: PopClientConfig['credentialsProvider'];
  readonly #agent: HttpAgent;
  readonly #endpoint: string;

  constructor(
    private readonly upstream: string,
    private readonly settings: TemporaryCredentialSettings,
    private readonly deps: TemporaryCredentialDeps,
  ) {
    this.#endpoint = settings.endpoint;
    const aliyun = require('@alicloud/credentials') as AliyunCredentialsModule;
    const config = settings.ecs_ram_role
      ? new aliyun.Config({ type: 'ecs_ram_role', roleName: settings.ecs_ram_role })
      : new aliyun.Config({ type: 'access_key', accessKeyId: settings.accessKeyId!.reveal(), accessKeySecret: settings.accessKeySecret!.reveal() });
    const credential = new aliyun.default(config);
    this.#provider = { getCredentials: () => credential.getCredential() };
    const pins = new HostPins(deps.hosts ?? {});
    const agentOptions = {
      keepAlive: true,
      ...(pins.size ? { lookup: pins.lookup() } : {}),
      ...(deps.caFile ? { ca: [...rootCertificates, readFileSync(deps.caFile, 'utf8')] } : {}),
    };
    this.#agent = settings.endpoint.startsWith('https:') ? new HttpsAgent(agentOptions) : new HttpAgent(agentOptions);
  }

  async current(): Promise<Credentials> {
    const cached = this.#cached;
    if (cached && this.deps.now() < cached.expiresAt - this.settings.refresh_before) return cached.credentials;
    return this.#flight.run('login', () => this.#login());
  }

  refused(): void {
    this.#cached = null;
  }

  async #login(): Promise<Credentials> {
    const pop = require('@alicloud/pop-core') as PopModule;
    const opts = { agent: this.#agent, timeout: this.deps.timeoutMs };
    const where = `upstream ${this.upstream}: GetAuthorizationToken at ${new URL(this.#endpoint).host}`;
    let answer: { token?: unknown; user?: unknown; expires?: unknown };
    try {
      if (this.settings.edition === 'enterprise') {
        const client = new pop.RPCClient({ endpoint: this.#endpoint, apiVersion: '2018-12-01', credentialsProvider: this.#provider });
        const res = (await client.request('GetAuthorizationToken', { InstanceId: this.settings.instance_id }, opts)) as Record<string, unknown>;
        answer = { token: res.AuthorizationToken, user: res.TempUsername, expires: res.ExpireTime };
      } else {
        const client = new pop.ROAClient({ endpoint: this.#endpoint, apiVersion: '2016-06-07', credentialsProvider: this.#provider });
        const res = (await client.request('GET', '/tokens', {}, '', {}, opts)) as { data?: Record<string, unknown> };
        answer = { token: res.data?.authorizationToken, user: res.data?.tempUserName, expires: res.data?.expireDate };
      }
    } catch (err) {
      // The SDK's own messages can carry the signed request URL: report only the service's error code.
      const e = err as { code?: unknown; statusCode?: unknown; data?: { Code?: unknown } };
      const code = typeof e.data?.Code === 'string' ? e.data.Code : typeof e.code === 'string' ? e.code : 'request failed';
      const status = typeof e.statusCode === 'number' ? ` (${e.statusCode})` : '';
      throw new RegistryError('UPSTREAM_AUTH_FAILED', `${where} failed: ${code}${status}`);
    }
    if (typeof answer.token !== 'string' || !answer.token || typeof answer.expires !== 'number') {
      throw new RegistryError('UPSTREAM_AUTH_FAILED', `${where} answered without a token or expiry`);
    }
    const credentials: Credentials = { username: typeof answer.user === 'string' ? answer.user : 'cr_temp_user', password: new Secret(answer.token) };
    this.#cached = { credentials, expiresAt: answer.expires };
    this.deps.log.info({ upstream: this.upstream, expiresAt: new Date(answer.expires).toISOString() }, 'obtained temporary ACR credentials');
    return credentials;
  }
}
