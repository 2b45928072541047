import type { ConfigFile } from './schema.js';
import { Secret } from './secret.js';
import { weakTokenReason } from './token-strength.js';

/** [cluster] resolved: the secret read from its environment variable or file. */
export interface ClusterConfig {
  self: string;
  members: string[];
  secret: Secret;
  /** Milliseconds. */
  forward_timeout: number;
}

const MIN_SECRET_LENGTH = 16;

/** The [cluster] table with its secret read; problems (named by key) are added to `problems`. */
export function clusterSettings(
  cluster: NonNullable<ConfigFile['cluster']>,
  env: NodeJS.ProcessEnv,
  readFile: (key: string, path: string) => string | null,
  problems: string[],
): ClusterConfig | undefined {
  const { secret_env, secret_file, ...rest } = cluster;
  const key = secret_file ? 'cluster.secret_file' : 'cluster.secret_env';
  const value = secret_file ? readFile(key, secret_file)?.trim() : env[secret_env!];
  if (value === undefined || value === null) {
    if (!secret_file) problems.push(`  ${key}: environment variable ${secret_env} is not set`);
    return undefined;
  }
  const weak = value.length < MIN_SECRET_LENGTH ? `shorter than ${MIN_SECRET_LENGTH} characters` : weakTokenReason(value);
  if (weak) {
    problems.push(`  ${key}: the cluster secret is too easy to guess (${weak}): use e.g. openssl rand -hex 32`);
    return undefined;
  }
  return { ...rest, secret: new Secret(value) };
}
