import { statfs } from 'node:fs/promises';

/** Bytes an unprivileged process may still write on the file system holding path, or null if it cannot be asked. */
export async function freeSpace(path: string): Promise<number | null> {
  try {
    const fs = await statfs(path);
    return fs.bavail * fs.bsize;
  } catch {
    return null;
  }
}
