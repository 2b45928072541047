import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { BuiltImage } from './images.js';
import type { Upstream } from './upstream.js';

/** config.toml for a mirror in front of a test upstream; extra TOML lines go into [upstreams.acr]. */
export function mirrorConfig(up: Pick<Upstream, 'registryUrl' | 'credentials'>, upstreamExtra = '', extra = ''): string {
  return `
[storage]
dir = "{{data}}"
[log]
level = "debug"
[upstreams.acr]
url = "${up.registryUrl}"
username = "${up.credentials.username}"
password_env = "ACR_PASSWORD"
insecure = true
retry_max_delay = "3s"
${upstreamExtra}
[[routes]]
prefix = ""
upstream = "acr"
${extra}`;
}

const hex = (digest: string) => digest.slice('sha256:'.length);

/** Asserts a skopeo `dir:` copy holds exactly the image's manifest(s) and blobs, byte for byte. */
export async function expectSameImage(out: string, image: BuiltImage): Promise<void> {
  expect((await readFile(join(out, 'manifest.json'))).equals(image.manifest)).toBe(true);
  if (image.kind === 'oci-index' || image.kind === 'docker-list') {
    for (const m of image.manifests) {
      expect((await readFile(join(out, `${hex(m.digest)}.manifest.json`))).equals(m.bytes)).toBe(true);
    }
  }
  for (const blob of image.blobs) {
    const pulled = await readFile(join(out, hex(blob.digest)));
    expect(pulled.length).toBe(blob.size);
    expect(pulled.equals(await readFile(blob.path))).toBe(true);
  }
}

/** Every committed blob hashes to its name, and nothing is left in tmp/. Returns the committed digests. */
export async function expectCacheConsistent(dataDir: string): Promise<string[]> {
  const root = join(dataDir, 'blobs', 'sha256');
  const digests: string[] = [];
  for (const prefix of await readdir(root).catch(() => [] as string[])) {
    for (const name of await readdir(join(root, prefix))) {
      const actual = await sha256File(join(root, prefix, name));
      expect(actual, `blob file ${prefix}/${name}`).toBe(name);
      expect(name.startsWith(prefix)).toBe(true);
      digests.push(`sha256:${name}`);
    }
  }
  const tmp = await readdir(join(dataDir, 'tmp')).catch(() => [] as string[]);
  expect(tmp, 'leftover temp files').toEqual([]);
  return digests;
}

export async function blobCached(dataDir: string, digest: string): Promise<boolean> {
  return stat(join(dataDir, 'blobs', 'sha256', hex(digest).slice(0, 2), hex(digest))).then(
    () => true,
    () => false,
  );
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
