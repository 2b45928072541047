import { isIP } from 'node:net';
import { z } from 'zod';
import { byteSize, duration } from './schema-units.js';
import { clusterSchema } from './cluster-schema.js';
import { ossStorage } from './storage-schema.js';

/** ACR's token services for every region: public, VPC, Enterprise and Enterprise VPC. */
export const DEFAULT_TOKEN_REALMS = ['dockerauth.*.aliyuncs.com', 'dockerauth-vpc.*.aliyuncs.com', 'dockerauth-ee.*.aliyuncs.com', 'dockerauth-ee-vpc.*.aliyuncs.com'];

const NAME_PREFIX = /^([a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)(\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const namePrefix = z
  .string()
  .refine((s) => s === '' || NAME_PREFIX.test(s), 'must be "" or a repository name prefix like "library" or "team/app"');

const upstream = z
  .object({
    url: z
      .string()
      .url('must be a URL like https://registry.cn-hangzhou.aliyuncs.com')
      .refine((u) => /^https?:\/\//.test(u), 'must start with https:// (or http:// with insecure = true)')
      .transform((u) => u.replace(/\/+$/, '')),
    /** Other registry host names that mean this upstream (public vs VPC endpoint), for ?ns= and in-path hosts. */
    aliases: z.array(z.string().regex(/^[a-z0-9.-]+(:\d+)?$/i, 'must be a host name, e.g. corp-registry.cn-shanghai.cr.aliyuncs.com')).default([]),
    /**
     * Token realm hosts (besides the registry's host, its aliases and an Enterprise instance's other name) that may
     * receive this upstream's credentials; a `*` label matches any one label.
     */
    token_realms: z
      .array(z.string().regex(/^(\*|[a-z0-9-]+)(\.(\*|[a-z0-9-]+))+$/i, 'must be a host name, "*" standing for one label, e.g. dockerauth.*.aliyuncs.com'))
      .default([...DEFAULT_TOKEN_REALMS]),
    /** Allows plain http:// and TLS without certificate verification for this upstream. */
    insecure: z.boolean().default(false),
    /** Host name -> IP used to connect (registry, token realm, OSS; "*.domain" wildcards); TLS still verifies the name. */
    hosts: z
      .record(
        z.string().regex(/^(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*$/i, 'keys are host names or *.domain wildcards'),
        z.string().ip('must be an IPv4 or IPv6 address'),
      )
      .default({}),
    ca_file: z.string().min(1).optional(),
    /** Outbound proxy URL for this upstream; "" disables the HTTPS_PROXY/HTTP_PROXY environment. */
    proxy: z.union([z.literal(''), z.string().url('must be a URL like http://proxy.lan:3128')]).optional(),
    username: z.string().min(1).optional(),
    password_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name').optional(),
    password_file: z.string().min(1).optional(),
    password: z.never({ message: 'passwords do not belong in config.toml: use password_env or password_file' }).optional(),
    /** Exchange an AccessKey pair or the ECS RAM role for ACR's temporary password (instead of username/password). */
    temporary_credentials: z
      .object({
        edition: z.enum(['personal', 'enterprise']),
        region: z.string().regex(/^[a-z]+-[a-z0-9-]+$/, 'must be a region id like cn-hangzhou'),
        instance_id: z.string().regex(/^cri-[a-z0-9]+$/, 'must be an Enterprise Edition instance id like cri-xxxx').optional(),
        endpoint: z.string().url('must be a URL like https://cr.cn-hangzhou.aliyuncs.com').optional(),
        access_key_id_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).default('ALIBABA_CLOUD_ACCESS_KEY_ID'),
        access_key_secret_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).default('ALIBABA_CLOUD_ACCESS_KEY_SECRET'),
        ecs_ram_role: z.string().min(1).optional(),
        refresh_before: duration('10m'),
      })
      .strict()
      .superRefine((t, ctx) => {
        if (t.edition === 'enterprise' && !t.instance_id) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['instance_id'], message: 'required for edition = "enterprise"' });
        }
      })
      .optional(),
    /** Never contact this upstream: serve only what is cached. */
    offline: z.boolean().default(false),
    breaker_threshold: z.number().int().min(1).max(1000).default(5),
    breaker_cooldown: duration('10s'),
    breaker_max_cooldown: duration('5m'),
    connect_timeout: duration('10s'),
    response_timeout: duration('30s'),
    idle_timeout: duration('30s'),
    fill_timeout: duration('30m'),
    retries: z.number().int().min(0).max(10).default(3),
    retry_max_delay: duration('30s'),
    max_redirects: z.number().int().min(1).max(10).default(5),
    /** Connections one fill may open to blob storage at once, each fetching its own byte range of the blob. */
    fill_connections: z.number().int().min(1).max(32).default(4),
    /** The byte range each of those connections asks for at a time, e.g. "8MiB" (at least 64KiB). */
    fill_segment_size: byteSize(64 * 1024, 1024 ** 3).default('8MiB'),
    /** Extra storage connections all fills of this upstream may hold together (a fill's first is never refused). */
    storage_connections: z.number().int().min(1).max(1024).default(32),
    token_margin: duration('30s'),
  })
  .strict()
  .superRefine((u, ctx) => {
    if (u.url.startsWith('http://') && !u.insecure) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['url'], message: 'plain http:// needs insecure = true for this upstream' });
    }
    if (u.temporary_credentials && (u.username || u.password_env || u.password_file)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['temporary_credentials'], message: 'use either temporary_credentials or username/password, not both' });
    }
    if (u.password_env && u.password_file) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['password_file'], message: 'set either password_env or password_file, not both' });
    }
    if ((u.password_env || u.password_file) && !u.username) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['username'], message: 'required when a password is configured' });
    }
    if (u.username && !u.password_env && !u.password_file) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['password_env'], message: 'username is set: give password_env or password_file' });
    }
  });

const route = z
  .object({
    prefix: namePrefix,
    upstream: z.string().min(1),
    rewrite: namePrefix.optional(),
  })
  .strict();

const LISTEN = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;
const listenAddress = z.string().superRefine((l, ctx) => {
  const m = LISTEN.exec(l);
  if (!m) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must be host:port, e.g. 127.0.0.1:5000 or 0.0.0.0:5000' });
  else if (Number(m[2]) > 65535) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'port must be 0 to 65535' });
});
const cidr = z.string().refine((v) => {
  const [address, bits, extra] = v.split('/');
  const family = isIP(address ?? '');
  if (!family || extra !== undefined) return false;
  if (bits === undefined) return true;
  return /^\d+$/.test(bits) && Number(bits) <= (family === 6 ? 128 : 32);
}, 'must be an address or CIDR, e.g. 10.0.0.0/8 or fd00::/8');

export const configSchema = z
  .object({
    server: z
      .object({
        listen: listenAddress.default('127.0.0.1:5000'),
        /** An HTTPS listener beside the plain one (Docker and containerd expect HTTPS unless told otherwise). */
        tls_listen: listenAddress.optional(),
        tls_cert: z.string().min(1).optional(),
        tls_key: z.string().min(1).optional(),
        shutdown_timeout: duration('30s'),
        /** Open client connections at most; more are refused until some close. */
        max_connections: z.number().int().min(1).max(1_000_000).default(1024),
        /** Time a client has to send its request headers (slow clients holding sockets). */
        headers_timeout: duration('30s'),
        /** Time a client has to send a whole request, body included (a bundle import upload); downloads are not bounded by it. 0s: none. */
        request_timeout: duration('1h'),
      })
      .strict()
      .superRefine((s, ctx) => {
        if (s.tls_listen && !(s.tls_cert && s.tls_key)) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['tls_listen'], message: 'needs tls_cert and tls_key' });
        }
        if (s.headers_timeout < 1000) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['headers_timeout'], message: 'must be at least 1s' });
        }
        if (s.request_timeout !== 0 && s.request_timeout < s.headers_timeout) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['request_timeout'], message: 'must be at least headers_timeout (or 0s: no limit)' });
        }
        if (!s.tls_listen && (s.tls_cert || s.tls_key)) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['tls_cert'], message: 'set tls_listen to serve HTTPS with this certificate' });
        }
      })
      .default({}),
    access: z
      .object({
        /** Client addresses allowed to pull, as CIDRs. */
        allow: z.array(cidr).min(1).default(['127.0.0.0/8', '::1/128']),
        /** htpasswd file with bcrypt entries; when set, clients must log in with HTTP Basic. */
        htpasswd: z.string().min(1).optional(),
      })
      .strict()
      .default({}),
    storage: z
      .object({
        /** Where blobs are kept: "fs" (storage.dir) or "oss" (the bucket of [storage.oss]). */
        backend: z.enum(['fs', 'oss']).default('fs'),
        dir: z.string().min(1).default('data'),
        /** Upper bound on cached blob bytes, e.g. "200GiB"; least recently used blobs are evicted beyond it. */
        max_size: byteSize(1).optional(),
        /** How often unreferenced entries and stale temp files are removed; 0s disables it. */
        gc_interval: duration('1h'),
        /** Entries used within this long are never collected. */
        gc_grace: duration('24h'),
        oss: ossStorage.optional(),
      })
      .strict()
      .superRefine((s, ctx) => {
        if (s.backend === 'oss' && !s.oss) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['oss'], message: 'backend = "oss" needs a [storage.oss] table with the bucket' });
        if (s.backend !== 'oss' && s.oss) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['backend'], message: '[storage.oss] is configured: set backend = "oss" to use it' });
      })
      .default({}),
    cache: z
      .object({
        tag_ttl: duration('5m'),
        /** An upstream 404 for a manifest is remembered this long per upstream, repository and reference; 0s disables. */
        not_found_ttl: duration('30s'),
        /** Fill the config and layers of an image manifest a client is answered, in the background. */
        prefetch: z.boolean().default(true),
        /** How many of those background fills run at once. */
        prefetch_concurrency: z.number().int().min(1).max(64).default(3),
        /** Never contact any upstream: serve only what is cached (the air-gapped side of a bundle transfer). */
        offline: z.boolean().default(false),
        /** Blob downloads from the upstream running at once, warm jobs included; a client starting one more gets 429. */
        max_fills: z.number().int().min(1).max(10_000).default(64),
        /** Blob downloads one client address may have started and running at once (joining a running one is free). */
        max_fills_per_client: z.number().int().min(1).max(10_000).default(16),
        /** A download nobody reads any more (its clients gone, no warm job waiting) is stopped after this long. */
        orphan_fill_grace: duration('30s'),
      })
      .strict()
      .default({}),
    log: z
      .object({
        level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
      })
      .strict()
      .default({}),
    admin: z
      .object({
        /** Environment variable holding the admin API's bearer token; ACR_MIRROR_ADMIN_TOKEN when unset. */
        token_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name').optional(),
        /** File holding the admin token, instead of token_env. */
        token_file: z.string().min(1).optional(),
        /** Client addresses (CIDRs) that may use the admin API and page; loopback plus access.allow when unset. */
        allow: z.array(cidr).min(1).optional(),
        /** Upstream downloads (manifests and blobs) that warm jobs run at once, all jobs together. */
        warm_concurrency: z.number().int().min(1).max(64).default(4),
      })
      .strict()
      .superRefine((a, ctx) => {
        if (a.token_env && a.token_file) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['token_file'], message: 'set either token_env or token_file, not both' });
        }
      })
      .default({}),
    upstreams: z
      .record(z.string().regex(/^[A-Za-z0-9_-]+$/, 'upstream names use letters, digits, - and _'), upstream)
      .default({ acr: { url: 'https://registry.cn-hangzhou.aliyuncs.com' } } as never),
    routes: z.array(route).optional(),
    cluster: clusterSchema.optional(),
  })
  .strict()
  .transform((cfg, ctx) => {
    // Without [[routes]], a single upstream serves every name; several upstreams need explicit routes.
    const names = Object.keys(cfg.upstreams);
    if (cfg.routes) return { ...cfg, routes: cfg.routes };
    if (names.length !== 1) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['routes'], message: 'several upstreams are configured: add [[routes]] saying which names go where' });
    }
    return { ...cfg, routes: names.length ? [{ prefix: '', upstream: names[0]! }] : [] };
  })
  .superRefine((cfg, ctx) => {
    const seen = new Set<string>();
    cfg.routes.forEach((r, i) => {
      if (!(r.upstream in cfg.upstreams)) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ['routes', i, 'upstream'],
          message: `no upstream named "${r.upstream}" (known: ${Object.keys(cfg.upstreams).join(', ') || 'none'})`,
        });
      }
      if (seen.has(r.prefix)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['routes', i, 'prefix'], message: `duplicate route prefix "${r.prefix}"` });
      }
      seen.add(r.prefix);
    });
    if (Object.keys(cfg.upstreams).length === 0) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['upstreams'], message: 'configure at least one upstream' });
    }
  });

export type ConfigFile = z.infer<typeof configSchema>;
export type UpstreamSettings = ConfigFile['upstreams'][string];
export type RouteSettings = ConfigFile['routes'][number];
