import { pack } from 'tar-stream';

/** A tar archive of these entries, in order. */
export async function tarOf(entries: [name: string, body: Buffer | string][]): Promise<Buffer> {
  const tar = pack();
  for (const [name, body] of entries) tar.entry({ name }, body);
  tar.finalize();
  const parts: Buffer[] = [];
  for await (const chunk of tar) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}
