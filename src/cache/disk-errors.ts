const DISK_ERRORS = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EIO', 'EACCES', 'EPERM', 'EMFILE', 'ENFILE', 'ENOENT', 'ENOTDIR']);

/** Whether err says the cache cannot be written (disk full, read-only...): a fill relays instead of failing. */
export function isDiskError(err: unknown): err is NodeJS.ErrnoException {
  return DISK_ERRORS.has((err as NodeJS.ErrnoException)?.code ?? '');
}
