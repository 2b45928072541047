import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { LOOPBACK_NETWORKS } from '../access/address-list.js';
import { type HtpasswdUser, parseHtpasswd } from '../access/client-access.js';
import { type ClusterConfig, clusterSettings } from './cluster.js';
import { withEnvOverrides } from './env-overrides.js';
import { formatIssue } from './issues.js';
import { configSchema, type ConfigFile, type UpstreamSettings } from './schema.js';
import { Secret } from './secret.js';
import { type StorageConfig, storageSettings } from './storage.js';
import { weakTokenReason } from './token-strength.js';

export interface Credentials {
  username: string;
  password: Secret;
}

export interface TemporaryCredentialSettings {
  edition: 'personal' | 'enterprise';
  region: string;
  instance_id?: string;
  /** The OpenAPI endpoint, https://cr.<region>.aliyuncs.com unless configured. */
  endpoint: string;
  accessKeyId?: Secret;
  accessKeySecret?: Secret;
  ecs_ram_role?: string;
  refresh_before: number;
}

export interface UpstreamConfig
  extends Omit<UpstreamSettings, 'password_env' | 'password_file' | 'username' | 'password' | 'temporary_credentials'> {
  name: string;
  credentials?: Credentials;
  temporaryCredentials?: TemporaryCredentialSettings;
}

export interface TlsSettings {
  listen: string;
  cert: string;
  key: Secret;
}

export interface AdminSettings {
  /** The admin API's bearer token; null disables the admin API. */
  token: Secret | null;
  /** Where the token came from, for the start-up log line (never the token). */
  tokenSource: string;
  warm_concurrency: number;
  /** Client addresses (CIDRs) that may use the admin API. */
  allow: string[];
  /** server.tls_listen is set: the login form refuses plain HTTP from other hosts. */
  httpsListener: boolean;
}

export interface Config extends Omit<ConfigFile, 'upstreams' | 'storage' | 'server' | 'access' | 'admin' | 'cluster'> {
  server: { listen: string; shutdown_timeout: number; max_connections: number; headers_timeout: number; request_timeout: number; tls?: TlsSettings };
  access: { allow: string[]; users: HtpasswdUser[] | null };
  admin: AdminSettings;
  storage: StorageConfig;
  upstreams: Record<string, UpstreamConfig>;
  /** Set when [cluster] is configured. */
  cluster: ClusterConfig | undefined;
  /** Where the configuration came from, for the start-up log line. */
  source: string;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface LoadOptions {
  /** Explicit path (--config); else ACR_MIRROR_CONFIG; else ./config.toml if present; else built-in defaults. */
  path?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export function loadConfig(opts: LoadOptions = {}): Config {
  const { raw, baseDir, source, env } = readConfigFile(opts);
  return parseConfig(raw, { env, baseDir, source });
}

export interface Listeners {
  /** server.listen: the plain HTTP listener. */
  listen: string;
  /** server.tls_listen, when HTTPS is served too. */
  tls_listen?: string;
  source: string;
}

/**
 * The listen addresses of the configuration, for commands that talk to a running mirror: the file is validated, but
 * its secrets (passwords, tokens, keys) are not read, as the operator's shell need not have them.
 */
export function loadListeners(opts: LoadOptions = {}): Listeners {
  const { raw, source } = readConfigFile(opts);
  const { listen, tls_listen } = validate(raw, source).server;
  return { listen, ...(tls_listen ? { tls_listen } : {}), source };
}

/** The configuration file (or none: built-in defaults) parsed, with the overrides of the environment applied. */
function readConfigFile(opts: LoadOptions): { raw: unknown; baseDir: string; source: string; env: NodeJS.ProcessEnv } {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const explicit = opts.path ?? env.ACR_MIRROR_CONFIG;
  const path = explicit ? resolve(cwd, explicit) : resolve(cwd, 'config.toml');
  const found = existsSync(path);
  if (explicit && !found) throw new ConfigError(`config file not found: ${path}`);
  const { raw, applied } = withEnvOverrides(found ? parseTomlFile(path) : {}, env, cwd);
  const file = found ? path : 'built-in defaults';
  const source = applied.length ? `${file} with ${applied.join(', ')} from the environment` : file;
  return { raw, baseDir: found ? dirname(path) : cwd, source, env };
}

function parseTomlFile(path: string): unknown {
  try {
    return parseToml(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`${path}: not valid TOML: ${(err as Error).message}`);
  }
}

function validate(raw: unknown, source: string): ConfigFile {
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(`${source}: invalid configuration:\n${parsed.error.issues.map((issue) => formatIssue(issue, raw, configSchema)).join('\n')}`);
  }
  return parsed.data;
}

/** Validates a parsed TOML document, resolves secrets and paths. Throws ConfigError naming every wrong key. */
export function parseConfig(raw: unknown, ctx: { env: NodeJS.ProcessEnv; baseDir: string; source: string }): Config {
  const file = validate(raw, ctx.source);
  const problems: string[] = [];
  const upstreams: Record<string, UpstreamConfig> = {};
  for (const [name, u] of Object.entries(file.upstreams)) {
    // An offline upstream is never contacted: its credentials may be absent (the air-gapped side).
    const credentialProblems = file.cache.offline || u.offline ? [] : problems;
    upstreams[name] = upstreamSettings(name, u, ctx, { credentials: credentialProblems, other: problems });
  }
  const readFile = (key: string, path: string): string | null => {
    const full = resolve(ctx.baseDir, path);
    try {
      return readFileSync(full, 'utf8');
    } catch (err) {
      problems.push(`  ${key}: cannot read ${full}: ${(err as NodeJS.ErrnoException).code ?? err}`);
      return null;
    }
  };
  const { tls_listen, tls_cert, tls_key, ...server } = file.server;
  const tls = tls_listen && tls_cert && tls_key ? tlsSettings(tls_listen, tls_cert, tls_key, readFile, problems) : undefined;
  const users = file.access.htpasswd ? htpasswdUsers(file.access.htpasswd, readFile, problems) : null;
  const admin = adminSettings(file.admin, { accessAllow: file.access.allow, httpsListener: tls !== undefined }, ctx.env, readFile, problems);
  const storage = storageSettings(file.storage, ctx.env, ctx.baseDir, problems);
  const cluster = file.cluster ? clusterSettings(file.cluster, ctx.env, readFile, problems) : undefined;
  if (problems.length) throw new ConfigError(`${ctx.source}: invalid configuration:\n${problems.join('\n')}`);
  return {
    ...file,
    server: { ...server, ...(tls ? { tls } : {}) },
    access: { allow: file.access.allow, users },
    admin,
    storage,
    upstreams,
    cluster,
    source: ctx.source,
  };
}

type FileReader = (key: string, path: string) => string | null;

/**
 * One upstream's settings with its secrets resolved (password, temporary-credential keys) and its CA file checked.
 * Missing secrets go to problems.credentials, anything else wrong to problems.other.
 */
function upstreamSettings(
  name: string,
  u: ConfigFile['upstreams'][string],
  ctx: { env: NodeJS.ProcessEnv; baseDir: string },
  problems: { credentials: string[]; other: string[] },
): UpstreamConfig {
  const { password_env, password_file, username, password: _never, temporary_credentials, ...rest } = u;
  let temporaryCredentials: TemporaryCredentialSettings | undefined;
  if (temporary_credentials) {
    const { access_key_id_env, access_key_secret_env, endpoint, ...t } = temporary_credentials;
    temporaryCredentials = { ...t, endpoint: endpoint ?? `https://cr.${t.region}.aliyuncs.com` };
    if (!t.ecs_ram_role) {
      const id = ctx.env[access_key_id_env];
      const secret = ctx.env[access_key_secret_env];
      if (!id) problems.credentials.push(`  upstreams.${name}.temporary_credentials.access_key_id_env: environment variable ${access_key_id_env} is not set`);
      if (!secret) problems.credentials.push(`  upstreams.${name}.temporary_credentials.access_key_secret_env: environment variable ${access_key_secret_env} is not set`);
      if (id && secret) temporaryCredentials = { ...temporaryCredentials, accessKeyId: new Secret(id), accessKeySecret: new Secret(secret) };
    }
  }
  let credentials: Credentials | undefined;
  if (username && password_env) {
    const value = ctx.env[password_env];
    if (!value) problems.credentials.push(`  upstreams.${name}.password_env: environment variable ${password_env} is not set`);
    else credentials = { username, password: new Secret(value) };
  } else if (username && password_file) {
    const file = resolve(ctx.baseDir, password_file);
    try {
      const value = readFileSync(file, 'utf8').trim();
      if (!value) problems.credentials.push(`  upstreams.${name}.password_file: ${file} is empty`);
      else credentials = { username, password: new Secret(value) };
    } catch (err) {
      problems.credentials.push(`  upstreams.${name}.password_file: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  }
  let caFile = rest.ca_file;
  if (caFile) {
    caFile = resolve(ctx.baseDir, caFile);
    try {
      if (!readFileSync(caFile, 'utf8').includes('-----BEGIN CERTIFICATE-----')) problems.other.push(`  upstreams.${name}.ca_file: ${caFile} holds no PEM certificate`);
    } catch (err) {
      problems.other.push(`  upstreams.${name}.ca_file: cannot read ${caFile}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  }
  return {
    ...rest,
    ...(caFile ? { ca_file: caFile } : {}),
    name,
    ...(credentials ? { credentials } : {}),
    ...(temporaryCredentials ? { temporaryCredentials } : {}),
  };
}

function tlsSettings(listen: string, certPath: string, keyPath: string, readFile: FileReader, problems: string[]): TlsSettings | undefined {
  const cert = readFile('server.tls_cert', certPath);
  const key = readFile('server.tls_key', keyPath);
  if (cert !== null && !cert.includes('-----BEGIN CERTIFICATE-----')) problems.push(`  server.tls_cert: ${certPath} holds no PEM certificate`);
  if (key !== null && !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) problems.push(`  server.tls_key: ${keyPath} holds no PEM private key`);
  return cert !== null && key !== null ? { listen, cert, key: new Secret(key) } : undefined;
}

function htpasswdUsers(path: string, readFile: FileReader, problems: string[]): HtpasswdUser[] | null {
  const text = readFile('access.htpasswd', path);
  if (text === null) return null;
  try {
    const users = parseHtpasswd(text);
    if (users.length === 0) problems.push(`  access.htpasswd: ${path} has no users`);
    return users;
  } catch (err) {
    problems.push(`  access.htpasswd: ${path}: ${(err as Error).message}`);
    return null;
  }
}

const DEFAULT_ADMIN_TOKEN_ENV = 'ACR_MIRROR_ADMIN_TOKEN';
const MIN_ADMIN_TOKEN_LENGTH = 16;

/**
 * The admin token from token_file, the named token_env, or ACR_MIRROR_ADMIN_TOKEN (none: admin API disabled), and
 * who may use it: admin.allow, else loopback and the access.allow networks.
 */
function adminSettings(
  admin: ConfigFile['admin'],
  server: { accessAllow: string[]; httpsListener: boolean },
  env: NodeJS.ProcessEnv,
  readFile: FileReader,
  problems: string[],
): AdminSettings {
  const { token_env, token_file, warm_concurrency } = admin;
  const allow = admin.allow ?? [...new Set([...LOOPBACK_NETWORKS, ...server.accessAllow])];
  let value: string | undefined;
  let tokenSource: string;
  let key: string;
  if (token_file) {
    key = 'admin.token_file';
    tokenSource = `file ${token_file}`;
    value = readFile(key, token_file)?.trim();
    if (value === '') problems.push(`  ${key}: ${token_file} is empty`);
  } else {
    key = 'admin.token_env';
    const name = token_env ?? DEFAULT_ADMIN_TOKEN_ENV;
    tokenSource = `environment variable ${name}`;
    value = env[name] || undefined;
    if (!value && token_env) problems.push(`  ${key}: environment variable ${token_env} is not set`);
  }
  if (value && value.length < MIN_ADMIN_TOKEN_LENGTH) {
    problems.push(`  ${key}: the admin token must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters`);
  } else if (value) {
    const weak = weakTokenReason(value);
    if (weak) problems.push(`  ${key}: the admin token is too easy to guess (${weak}): use e.g. openssl rand -hex 32`);
  }
  return { token: value ? new Secret(value) : null, tokenSource, warm_concurrency, allow, httpsListener: server.httpsListener };
}
