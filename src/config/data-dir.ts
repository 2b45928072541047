import { accessSync, constants, statSync } from 'node:fs';
import { dirname } from 'node:path';

const CAUSES: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOTDIR: 'not a directory',
  ELOOP: 'too many symbolic links',
};

/** An errno code in words, e.g. "permission denied (EACCES)". */
export function errnoCause(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (!code) return (err as Error).message;
  return CAUSES[code] ? `${CAUSES[code]} (${code})` : code;
}

/**
 * Why storage.dir cannot be used, or null: it must be a writable directory, or creatable (its nearest existing
 * ancestor a writable directory). A dry check: nothing is created.
 */
export function dataDirProblem(dir: string): string | null {
  let path = dir;
  for (;;) {
    let isDirectory: boolean;
    try {
      isDirectory = statSync(path).isDirectory();
    } catch (err) {
      const parent = dirname(path);
      const code = (err as NodeJS.ErrnoException).code;
      // Missing, or below something that is not a directory: the nearest existing ancestor says why.
      if ((code === 'ENOENT' || code === 'ENOTDIR') && parent !== path) {
        path = parent;
        continue;
      }
      return `data directory ${dir}: ${path}: ${errnoCause(err)}`;
    }
    const what = path === dir ? `data directory ${dir}` : `data directory ${dir} cannot be created: ${path}`;
    if (!isDirectory) return `${what} is not a directory`;
    try {
      accessSync(path, constants.W_OK | constants.X_OK);
    } catch (err) {
      return `${what} is not writable: ${errnoCause(err)}`;
    }
    return null;
  }
}
