import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'vitest';
import { eventually } from '../../support/eventually.js';
import type { BuiltImage } from './images.js';
import type { Upstream } from './upstream.js';

/**
 * config.toml for a mirror in front of a test upstream; upstreamExtra TOML lines go into [upstreams.acr],
 * storageExtra lines into [storage], extra lines at the end.
 */
export function mirrorConfig(up: Pick<Upstream, 'registryUrl' | 'credentials'>, upstreamExtra = '', extra = '', storageExtra = ''): string {
  return `
[storage]
dir = "{{data}}"
${storageExtra}
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

/**
 * Throws, listing every problem, unless the cache directory is consistent: blobs/ and tmp/ exist, every row of the
 * blobs table has a file of its size whose sha256 is its name, every file has a row, and tmp/ is empty. Reads
 * mirror.db read-only, so the mirror may be running. Call it when no client is pulling: a fill still finishing
 * (a client may have its last byte while the commit runs) or a reconciliation after a restart is waited for up
 * to timeoutMs; what stays inconsistent fails.
 */
export async function expectCacheConsistent(dataDir: string, { timeoutMs = 5000 } = {}): Promise<void> {
  await eventually(
    async () => {
      const problems = await cacheProblems(dataDir);
      if (problems.length) throw new Error(`cache ${dataDir} is inconsistent:\n  ${problems.join('\n  ')}`);
    },
    { timeoutMs, intervalMs: 100 },
  );
}

async function cacheProblems(dataDir: string): Promise<string[]> {
  const problems: string[] = [];
  const files = new Map<string, string>();
  const missing = (dir: string) => (err: NodeJS.ErrnoException) => {
    problems.push(`${dir} cannot be listed: ${err.code ?? err.message}`);
    return [] as string[];
  };
  await readdir(join(dataDir, 'blobs')).catch(missing('blobs/'));
  const root = join(dataDir, 'blobs', 'sha256');
  // blobs/sha256/ appears with the first commit
  for (const prefix of await readdir(root).catch(() => [] as string[])) {
    for (const name of await readdir(join(root, prefix)).catch(missing(`blobs/sha256/${prefix}/`))) {
      if (!name.startsWith(prefix)) problems.push(`blob file ${prefix}/${name} is in the wrong directory`);
      files.set(`sha256:${name}`, join(root, prefix, name));
    }
  }
  const rows = blobRows(join(dataDir, 'mirror.db'), problems);
  for (const [digest, size] of rows) {
    const path = files.get(digest);
    if (!path) problems.push(`row ${digest} has no file`);
    else {
      const actual = await sha256File(path);
      if (actual.size !== size) problems.push(`blob file ${digest} has ${actual.size} bytes, its row ${size}`);
      if (`sha256:${actual.hex}` !== digest) problems.push(`blob file ${digest} hashes to sha256:${actual.hex}`);
    }
  }
  for (const digest of files.keys()) if (!rows.has(digest)) problems.push(`blob file ${digest} has no row`);
  const tmp = await readdir(join(dataDir, 'tmp')).catch(missing('tmp/'));
  if (tmp.length) problems.push(`leftover temp files: ${tmp.join(', ')}`);
  return problems;
}

/** digest -> size of every row of the blobs table. */
function blobRows(database: string, problems: string[]): Map<string, number> {
  if (!existsSync(database)) {
    problems.push('mirror.db is missing');
    return new Map();
  }
  const db = new Database(database, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT digest, size FROM blobs').all() as { digest: string; size: number }[];
    return new Map(rows.map((r) => [r.digest, r.size]));
  } finally {
    db.close();
  }
}

export async function blobCached(dataDir: string, digest: string): Promise<boolean> {
  return stat(join(dataDir, 'blobs', 'sha256', hex(digest).slice(0, 2), hex(digest))).then(
    () => true,
    () => false,
  );
}

async function sha256File(path: string): Promise<{ hex: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { hex: hash.digest('hex'), size };
}
