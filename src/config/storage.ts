import { resolve } from 'node:path';
import type { ConfigFile } from './schema.js';
import { Secret } from './secret.js';

/** How OSS requests are signed: an AccessKey pair from the environment, or the ECS instance's RAM role. */
export type OssCredentialSettings = { accessKeyId: Secret; accessKeySecret: Secret } | { ecsRamRole: string };

/** [storage.oss] resolved: the credentials, the region in ali-oss's form (oss-cn-hangzhou). */
export interface OssStorageConfig {
  bucket: string;
  endpoint?: string;
  region?: string;
  internal: boolean;
  prefix: string;
  timeout: number;
  part_size: number;
  redirect: boolean;
  max_size?: number;
  credentials: OssCredentialSettings;
}

export interface StorageConfig {
  backend: 'fs' | 'oss';
  dir: string;
  max_size?: number;
  gc_interval: number;
  gc_grace: number;
  /** Set exactly when backend = "oss". */
  oss?: OssStorageConfig;
}

/** The [storage] table with storage.dir resolved against baseDir and the OSS credentials settled. */
export function storageSettings(storage: ConfigFile['storage'], env: NodeJS.ProcessEnv, baseDir: string, problems: string[]): StorageConfig {
  const { oss, ...rest } = storage;
  const settings: StorageConfig = { ...rest, dir: resolve(baseDir, storage.dir) };
  if (!oss) return settings;
  const { access_key_id_env, access_key_secret_env, ecs_ram_role, region, endpoint, ...o } = oss;
  const credentials = ecs_ram_role ? { ecsRamRole: ecs_ram_role } : accessKeyFromEnv(env, problems, access_key_id_env, access_key_secret_env);
  if (!credentials) return settings;
  return {
    ...settings,
    oss: {
      ...o,
      ...(endpoint ? { endpoint } : {}),
      ...(region ? { region: region.startsWith('oss-') ? region : `oss-${region}` } : {}),
      credentials,
    },
  };
}

function accessKeyFromEnv(env: NodeJS.ProcessEnv, problems: string[], idEnv = 'ALIBABA_CLOUD_ACCESS_KEY_ID', secretEnv = 'ALIBABA_CLOUD_ACCESS_KEY_SECRET'): OssCredentialSettings | null {
  const id = env[idEnv];
  const secret = env[secretEnv];
  const how = 'is not set (or set storage.oss.ecs_ram_role to sign with the ECS instance\'s RAM role)';
  if (!id) problems.push(`  storage.oss.access_key_id_env: environment variable ${idEnv} ${how}`);
  if (!secret) problems.push(`  storage.oss.access_key_secret_env: environment variable ${secretEnv} ${how}`);
  return id && secret ? { accessKeyId: new Secret(id), accessKeySecret: new Secret(secret) } : null;
}
