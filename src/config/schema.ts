import { z } from 'zod';
import { parseDuration } from './units.js';

const duration = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((value, ctx) => {
      const ms = parseDuration(value);
      if (ms === null) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `invalid duration "${value}" (use e.g. 500ms, 30s, 5m, 1h)` });
        return z.NEVER;
      }
      return ms;
    });

const NAME_PREFIX = /^([a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)(\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const namePrefix = z
  .string()
  .refine((s) => s === '' || NAME_PREFIX.test(s), 'must be "" or a repository name prefix like "library" or "team/app"');

const upstream = z
  .object({
    url: z
      .string()
      .url('must be a URL like https://registry.cn-hangzhou.aliyuncs.com')
      .refine((u) => /^https?:\/\//.test(u), 'must start with https:// (or http:// for a plain-HTTP registry)')
      .transform((u) => u.replace(/\/+$/, '')),
    username: z.string().min(1).optional(),
    password_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name').optional(),
    password_file: z.string().min(1).optional(),
    password: z.never({ message: 'passwords do not belong in config.toml: use password_env or password_file' }).optional(),
    connect_timeout: duration('10s'),
    response_timeout: duration('30s'),
    idle_timeout: duration('30s'),
    fill_timeout: duration('30m'),
    retries: z.number().int().min(0).max(10).default(3),
    retry_max_delay: duration('30s'),
    max_redirects: z.number().int().min(1).max(10).default(5),
    token_margin: duration('30s'),
  })
  .strict()
  .superRefine((u, ctx) => {
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

export const configSchema = z
  .object({
    server: z
      .object({
        listen: z
          .string()
          .superRefine((l, ctx) => {
            const m = LISTEN.exec(l);
            if (!m) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must be host:port, e.g. 127.0.0.1:5000 or 0.0.0.0:5000' });
            else if (Number(m[2]) > 65535) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'port must be 0 to 65535' });
          })
          .default('127.0.0.1:5000'),
        shutdown_timeout: duration('30s'),
      })
      .strict()
      .default({}),
    storage: z
      .object({
        dir: z.string().min(1).default('data'),
      })
      .strict()
      .default({}),
    cache: z
      .object({
        tag_ttl: duration('5m'),
      })
      .strict()
      .default({}),
    log: z
      .object({
        level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
      })
      .strict()
      .default({}),
    upstreams: z
      .record(z.string().regex(/^[A-Za-z0-9_-]+$/, 'upstream names use letters, digits, - and _'), upstream)
      .default({ acr: { url: 'https://registry.cn-hangzhou.aliyuncs.com' } } as never),
    routes: z.array(route).optional(),
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
