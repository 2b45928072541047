import { z } from 'zod';
import { parseDuration, parseSize } from './units.js';

/** zod types for the configuration's units: durations ("30s") and sizes ("8MiB"). */

export const duration = (fallback: string) =>
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

/** A size such as "8MiB" or "200GiB", in bytes, at least `min`. */
export const byteSize = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.string().transform((value, ctx) => {
    const bytes = parseSize(value);
    if (bytes === null || bytes < min || bytes > max) {
      const bounds = min > 1 ? ` between ${min} and ${max} bytes` : '';
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `invalid size "${value}"${bounds} (use e.g. 500MiB, 200GiB, 1TB)` });
      return z.NEVER;
    }
    return bytes;
  });
