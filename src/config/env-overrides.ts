import { resolve } from 'node:path';

/**
 * Settings the environment overrides, whatever the configuration file says: what depends on where the mirror runs
 * rather than on what it mirrors. The container image sets them, so a mounted config.toml keeps the image's /data
 * volume and its listen address; the systemd unit puts the cache in its StateDirectory.
 */
export const ENV_OVERRIDES = [
  { variable: 'ACR_MIRROR_LISTEN', section: 'server', key: 'listen', value: (v: string) => v },
  { variable: 'ACR_MIRROR_STORAGE_DIR', section: 'storage', key: 'dir', value: (v: string, cwd: string) => resolve(cwd, v) },
  { variable: 'ACR_MIRROR_ALLOW', section: 'access', key: 'allow', value: (v: string) => v.split(',').map((c) => c.trim()).filter(Boolean) },
  // each replica of one StatefulSet gets its own from its pod name, with one config file for all
  { variable: 'ACR_MIRROR_CLUSTER_SELF', section: 'cluster', key: 'self', value: (v: string) => v },
] as const;

type Table = Record<string, unknown>;
const isTable = (v: unknown): v is Table => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The parsed configuration file with the overrides of the environment applied (an empty variable is unset), and the
 * variables that were. A section that is not a table is left for validation to report.
 */
export function withEnvOverrides(raw: unknown, env: NodeJS.ProcessEnv, cwd: string): { raw: unknown; applied: string[] } {
  if (!isTable(raw)) return { raw, applied: [] };
  const result: Table = { ...raw };
  const applied: string[] = [];
  for (const { variable, section, key, value } of ENV_OVERRIDES) {
    const given = env[variable]?.trim();
    const table = result[section] ?? {};
    if (!given || !isTable(table)) continue;
    result[section] = { ...table, [key]: value(given, cwd) };
    applied.push(variable);
  }
  return { raw: result, applied };
}
