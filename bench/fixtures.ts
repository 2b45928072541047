import { createCipheriv, createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BuiltImage, ImageSpec } from '../test/e2e/harness/images.js';
import type { Upstream } from '../test/e2e/harness/upstream.js';

export interface RawBlob {
  repo: string;
  digest: string;
  size: number;
  /** The file in the upstream's storage (what its "OSS" serves). */
  path: string;
}

const MiB = 1024 * 1024;

/**
 * A blob of `size` seeded incompressible bytes, written straight into the upstream Distribution's filesystem
 * storage and linked into `repo` (the layout Distribution itself writes): pushing 1 GiB with skopeo would cost
 * a gzip pass and a full upload for nothing, since the benchmarks only GET it as a blob.
 */
export async function seedRawBlob(up: Upstream, repo: string, size: number, seed: string): Promise<RawBlob> {
  const v2 = join(up.registry.storageRoot, 'docker', 'registry', 'v2');
  const temp = join(v2, `bench-upload-${process.pid}`);
  await mkdir(v2, { recursive: true });
  const hash = createHash('sha256');
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
  await pipeline(Readable.from(zeros(size)), cipher, tap, createWriteStream(temp));
  const hex = hash.digest('hex');
  const path = join(v2, 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
  await mkdir(dirname(path), { recursive: true });
  await rename(temp, path);
  const link = join(v2, 'repositories', repo, '_layers', 'sha256', hex, 'link');
  await mkdir(dirname(link), { recursive: true });
  await writeFile(link, `sha256:${hex}`);
  return { repo, digest: `sha256:${hex}`, size, path };
}

function* zeros(size: number): Generator<Buffer> {
  const chunk = Buffer.alloc(Math.min(size, MiB));
  for (let left = size; left > 0; left -= chunk.length) yield left >= chunk.length ? chunk : chunk.subarray(0, left);
}

/** Bytes a pull transfers: the manifest and every blob. */
export function imageBytes(image: BuiltImage): number {
  return image.manifest.length + image.blobs.reduce((n, b) => n + b.size, 0);
}

/** Each fixture is made once per benchmark run, on first use. */
export class Fixtures {
  readonly #made = new Map<string, Promise<unknown>>();

  constructor(private readonly up: Upstream) {}

  blob(size: number): Promise<RawBlob> {
    return this.#once(`blob/${size}`, () => seedRawBlob(this.up, 'bench/blob', size, `bench blob ${size}`));
  }

  image(spec: Omit<ImageSpec, 'kind'>): Promise<BuiltImage> {
    return this.#once(`image/${spec.repo}:${spec.tag}`, () => this.up.pushImage({ kind: 'docker', ...spec }));
  }

  #once<T>(key: string, make: () => Promise<T>): Promise<T> {
    let made = this.#made.get(key) as Promise<T> | undefined;
    if (!made) {
      made = make();
      this.#made.set(key, made);
    }
    return made;
  }
}
