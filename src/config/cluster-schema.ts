import { z } from 'zod';
import { duration } from './schema-units.js';

/** A member's base URL: http(s), scheme://host:port only (the forwarding paths are appended to it). */
const memberUrl = z
  .string()
  .url('must be a URL like http://10.0.0.11:5000')
  .refine((u) => /^https?:\/\/[^/?#]+\/?$/.test(u), 'must be scheme://host:port with no path, e.g. http://10.0.0.11:5000')
  .transform((u) => new URL(u).origin);

/**
 * [cluster]: replicas that share the upstream downloads. Every blob or manifest digest is owned by one member;
 * the others forward its miss to the owner. The secret is read from the environment or a file, never the TOML.
 */
export const clusterSchema = z
  .object({
    /** This replica's URL as the other members reach it; one of members. */
    self: memberUrl,
    /** Every replica's URL, the same list on every replica. */
    members: z.array(memberUrl).min(1),
    /** Environment variable holding the secret the members send each other. */
    secret_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name').optional(),
    /** File holding that secret, instead of secret_env. */
    secret_file: z.string().min(1).optional(),
    /** Time the owner has to answer a forwarded miss (headers) before this replica fetches it itself. */
    forward_timeout: duration('5s'),
  })
  .strict()
  .superRefine((c, ctx) => {
    const seen = new Set<string>();
    c.members.forEach((m, i) => {
      if (seen.has(m)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['members', i], message: `${m} is listed twice` });
      seen.add(m);
    });
    if (!seen.has(c.self)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['self'], message: `${c.self} is not one of members` });
    if (!c.secret_env === !c.secret_file) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['secret_env'], message: 'set either secret_env or secret_file (the secret itself is never in the TOML)' });
    }
  });
