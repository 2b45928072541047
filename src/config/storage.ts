import { resolve } from 'node:path';
import type { ConfigFile } from './schema.js';
import { Secret } from './secret.js';

/** [storage.oss] resolved: the access key from the environment, the region in ali-oss's form (oss-cn-hangzhou). */
export interface OssStorageConfig {
  bucket: string;
  endpoint?: string;
  region?: string;
  internal: boolean;
  prefix: string;
  timeout: number;
  part_size: number;
  redirect: boolean;
  accessKeyId: Secret;
  accessKeySecret: Secret;
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

/** The [storage] table with storage.dir resolved against baseDir and the OSS access key read from env. */
export function storageSettings(storage: ConfigFile['storage'], env: NodeJS.ProcessEnv, baseDir: string, problems: string[]): StorageConfig {
  const { oss, ...rest } = storage;
  const settings: StorageConfig = { ...rest, dir: resolve(baseDir, storage.dir) };
  if (!oss) return settings;
  const { access_key_id_env, access_key_secret_env, region, endpoint, ...o } = oss;
  const id = env[access_key_id_env];
  const secret = env[access_key_secret_env];
  if (!id) problems.push(`  storage.oss.access_key_id_env: environment variable ${access_key_id_env} is not set`);
  if (!secret) problems.push(`  storage.oss.access_key_secret_env: environment variable ${access_key_secret_env} is not set`);
  if (!id || !secret) return settings;
  return {
    ...settings,
    oss: {
      ...o,
      ...(endpoint ? { endpoint } : {}),
      ...(region ? { region: region.startsWith('oss-') ? region : `oss-${region}` } : {}),
      accessKeyId: new Secret(id),
      accessKeySecret: new Secret(secret),
    },
  };
}
