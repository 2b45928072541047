import { z } from 'zod';
import { byteSize, duration } from './schema-units.js';

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name');

/**
 * [storage.oss]: the bucket blobs are kept in with backend = "oss". Credentials only by environment variable name
 * or as the ECS instance's RAM role; the variable names' defaults apply in storage.ts, so that setting them next to
 * ecs_ram_role can be refused.
 */
export const ossStorage = z
  .object({
    bucket: z.string().regex(/^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/, 'must be an OSS bucket name (3-63 lowercase letters, digits and -)'),
    endpoint: z
      .string()
      .url('must be a URL like https://oss-cn-hangzhou-internal.aliyuncs.com')
      .refine((u) => /^https?:\/\//.test(u), 'must start with https:// (or http://)')
      .optional(),
    region: z.string().regex(/^(oss-)?[a-z]+-[a-z0-9-]+$/, 'must be a region id like cn-hangzhou').optional(),
    /** With region: the VPC-internal endpoint (no traffic charges from ECS in the same region). */
    internal: z.boolean().default(false),
    prefix: z
      .string()
      .regex(/^([A-Za-z0-9._-]+\/)*[A-Za-z0-9._-]*$/, 'must be "" or a key prefix like "acr-mirror/" (no leading /)')
      .refine((p) => !p.split('/').some((s) => s === '.' || s === '..'), 'must not contain . or .. segments')
      .default(''),
    access_key_id_env: envName.optional(),
    access_key_secret_env: envName.optional(),
    ecs_ram_role: z.string().regex(/^[A-Za-z0-9.-]{1,64}$/, 'must be a RAM role name (letters, digits, . and -)').optional(),
    timeout: duration('60s'),
    /** Multipart upload part size: OSS takes 100 KiB to 5 GiB per part and at most 10 000 parts per object. */
    part_size: byteSize(100 * 1024, 5 * 1024 ** 3).default('8MiB'),
    /** Blob GETs of blobs in the bucket are answered with a 307 to a presigned URL (clients that reach the bucket). */
    redirect: z.boolean().default(false),
    /** Bytes of blobs the bucket may hold; one replica at a time (the evictor lease's holder) evicts. */
    max_size: byteSize(1).optional(),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (!o.endpoint === !o.region) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['endpoint'], message: 'set either endpoint or region' });
    if (o.ecs_ram_role && (o.access_key_id_env || o.access_key_secret_env)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['ecs_ram_role'], message: 'set either ecs_ram_role or access_key_id_env/access_key_secret_env, not both' });
    }
    if (o.internal && !o.region) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['internal'], message: 'internal = true goes with region (an endpoint says it itself)' });
  });
