import { pack } from 'tar-stream';

/** One tar entry: a name, its body, and optionally another entry type than a regular file. */
export type TarEntry = [name: string, body: Buffer | string, type?: 'symlink' | 'directory'];

/** A tar archive of these entries, in order. */
export async function tarOf(entries: TarEntry[]): Promise<Buffer> {
  const tar = pack();
  for (const [name, body, type] of entries) {
    if (type === 'symlink') tar.entry({ name, type, linkname: String(body) });
    else if (type === 'directory') tar.entry({ name, type });
    else tar.entry({ name }, body);
  }
  tar.finalize();
  const parts: Buffer[] = [];
  for await (const chunk of tar) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}
