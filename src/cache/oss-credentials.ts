import { createRequire } from 'node:module';
import type { OssCredentialSettings } from '../config/storage.js';
import { SingleFlight } from '../util/single-flight.js';

/** The keys one OSS request is signed with; temporary ones carry their security token. */
export interface OssKeys {
  accessKeyId: string;
  accessKeySecret: string;
  securityToken?: string;
}

/** What @alicloud/credentials answers: the current keys, renewed by it before they expire. */
export interface CredentialProvider {
  getCredential(): Promise<Partial<OssKeys>>;
}

/** How a client signs: a fixed AccessKey pair, or temporary keys asked for before every request. */
export type OssSigning = { accessKeyId: string; accessKeySecret: string } | { temporaryCredentials: TemporaryOssCredentials };

/** The provider could not give keys (the ECS metadata service did not answer, the role is not attached...). */
export class OssCredentialsError extends Error {
  constructor(readonly source: string, reason: string) {
    super(`cannot get OSS credentials from ${source}: ${reason}`);
    this.name = 'OssCredentialsError';
  }
}

/**
 * Temporary keys (STS) from a provider that renews them before expiry, as @alicloud/credentials does for a RAM role
 * (a quarter of an hour ahead). Callers arriving together share one call to the provider.
 */
export class TemporaryOssCredentials {
  readonly #flight = new SingleFlight<'keys', OssKeys>();

  constructor(
    private readonly provider: CredentialProvider,
    /** Names the source in errors, e.g. "ECS RAM role acr-mirror". */
    readonly source: string,
  ) {}

  current(): Promise<OssKeys> {
    return this.#flight.run('keys', async () => {
      let keys: Partial<OssKeys>;
      try {
        keys = await this.provider.getCredential();
      } catch (err) {
        // The SDK's messages name the metadata URL and the role, never keys: the first line is kept.
        throw new OssCredentialsError(this.source, ((err as Error).message ?? 'failed').split('\n')[0]!);
      }
      if (!keys.accessKeyId || !keys.accessKeySecret || !keys.securityToken) throw new OssCredentialsError(this.source, 'the answer lacks a key or security token');
      return { accessKeyId: keys.accessKeyId, accessKeySecret: keys.accessKeySecret, securityToken: keys.securityToken };
    });
  }
}

// CommonJS package without usable ESM types: loaded with require and typed by what is used (as upstream/credentials.ts).
const require = createRequire(import.meta.url);
interface AliyunCredentialsModule {
  default: new (config: unknown) => CredentialProvider;
  Config: new (config: Record<string, unknown>) => unknown;
}

/**
 * The ECS instance's RAM role, through the instance metadata service (only reachable on ECS). The SDK's client is
 * made on first use, so that its refusals (ALIBABA_CLOUD_ECS_METADATA_DISABLED=true) are reported like any failure
 * to get keys.
 */
export function ecsRamRoleCredentials(roleName: string): TemporaryOssCredentials {
  let credential: CredentialProvider | undefined;
  const provider = {
    getCredential: () => {
      const aliyun = require('@alicloud/credentials') as AliyunCredentialsModule;
      credential ??= new aliyun.default(new aliyun.Config({ type: 'ecs_ram_role', roleName }));
      return credential.getCredential();
    },
  };
  return new TemporaryOssCredentials(provider, `ECS RAM role ${roleName}`);
}

/** The configured way of signing, made usable by a client. */
export function ossSigning(settings: OssCredentialSettings): OssSigning {
  if ('ecsRamRole' in settings) return { temporaryCredentials: ecsRamRoleCredentials(settings.ecsRamRole) };
  return { accessKeyId: settings.accessKeyId.reveal(), accessKeySecret: settings.accessKeySecret.reveal() };
}
