import { spawn, type ChildProcess } from 'node:child_process';
import { createCipheriv, createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, link, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Skopeo } from './skopeo.js';

export const MediaType = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

/**
 * docker: schema2 manifest; oci: OCI manifest; oci-index: OCI index of OCI manifests;
 * docker-list: Docker manifest list of schema2 manifests. Multi-platform kinds are linux/<architectures>.
 */
export type ImageKind = 'docker' | 'oci' | 'oci-index' | 'docker-list';

export interface LayerSpec {
  /** Payload bytes before tar and gzip. */
  size: number;
  /** Same seed and size, same layer (and digest): use it to share a layer between images. */
  seed: string;
}

export interface ImageSpec {
  kind: ImageKind;
  repo: string;
  tag: string;
  /**
   * Payload sizes (seeded from the image seed) or explicit layers. Default: 1 MiB and 256 KiB.
   * Multi-platform kinds append `/<architecture>` to each layer seed, so platforms never share layers.
   */
  layers?: Array<number | LayerSpec>;
  /** Makes the content distinct. Default `<kind>/<repo>:<tag>`. */
  seed?: string;
  /** Multi-platform kinds only. Default ['amd64', 'arm64']. */
  architectures?: string[];
}

export interface BlobFile {
  digest: string;
  size: number;
  mediaType: string;
  /** Local copy of the exact bytes. */
  path: string;
}

export interface Platform {
  os: string;
  architecture: string;
}

export interface ImageManifest {
  digest: string;
  mediaType: string;
  bytes: Buffer;
  platform: Platform;
  config: BlobFile;
  layers: BlobFile[];
}

export interface BuiltImage {
  kind: ImageKind;
  repo: string;
  tag: string;
  /** Digest, media type and exact bytes of the top-level manifest (the index for oci-index). */
  digest: string;
  mediaType: string;
  manifest: Buffer;
  /** The index's platform manifests, or the single image itself. */
  manifests: ImageManifest[];
  /** Every config and layer blob, deduplicated. */
  blobs: BlobFile[];
}

export interface PushTarget {
  /** host:port of a plain-HTTP registry. */
  host: string;
  username: string;
  password: string;
}

const MiB = 1024 * 1024;

/**
 * Builds deterministic test images (incompressible seeded layers, reproducible tar + gzip) in `dir`, which also
 * caches layers for as long as the builder lives, and pushes them with skopeo keeping digests.
 */
export class ImageBuilder {
  private readonly layers = new Map<string, Promise<Layer>>();
  private readonly blobs = new Map<string, Promise<BlobFile>>();
  private layouts = 0;

  constructor(
    private readonly dir: string,
    private readonly skopeo: Skopeo,
  ) {}

  async build(spec: ImageSpec): Promise<BuiltImage> {
    const seed = spec.seed ?? `${spec.kind}/${spec.repo}:${spec.tag}`;
    const layerSpecs = (spec.layers ?? [MiB, 256 * 1024]).map((l, i) =>
      typeof l === 'number' ? { size: l, seed: `${seed}/layer${i}` } : l,
    );
    if (spec.kind === 'docker' || spec.kind === 'oci') {
      const image = await this.image(spec.kind, layerSpecs, { os: 'linux', architecture: 'amd64' }, seed);
      return {
        ...naming(spec),
        digest: image.digest,
        mediaType: image.mediaType,
        manifest: image.bytes,
        manifests: [image],
        blobs: blobsOf([image]),
      };
    }
    const manifests = await Promise.all(
      (spec.architectures ?? ['amd64', 'arm64']).map((architecture) =>
        this.image(
          spec.kind === 'oci-index' ? 'oci' : 'docker',
          layerSpecs.map((l) => ({ size: l.size, seed: `${l.seed}/${architecture}` })),
          { os: 'linux', architecture },
          `${seed}/${architecture}`,
        ),
      ),
    );
    const mediaType = spec.kind === 'oci-index' ? MediaType.ociIndex : MediaType.dockerList;
    const index = json({
      schemaVersion: 2,
      mediaType,
      manifests: manifests.map((m) => ({ mediaType: m.mediaType, digest: m.digest, size: m.bytes.length, platform: m.platform })),
    });
    return { ...naming(spec), digest: sha256(index), mediaType, manifest: index, manifests, blobs: blobsOf(manifests) };
  }

  /** Builds and pushes with `skopeo copy --preserve-digests`; the returned digests are the registry's. */
  async push(spec: ImageSpec, target: PushTarget): Promise<BuiltImage> {
    const image = await this.build(spec);
    const layout = join(this.dir, `layout-${++this.layouts}`);
    // skopeo 1.9's oci: transport refuses Docker media types, so those go through dir:.
    const source = image.kind === 'oci-index' ? await this.writeOciLayout(layout, image) : await this.writeDirLayout(layout, image);
    try {
      const r = await this.skopeo([
        'copy', '--quiet', '--preserve-digests', '--all',
        '--dest-tls-verify=false', '--dest-creds', `${target.username}:${target.password}`,
        source, `docker://${target.host}/${image.repo}:${image.tag}`,
      ]);
      if (r.code !== 0) throw new Error(`pushing ${image.repo}:${image.tag} failed:\n${r.stderr}`);
    } finally {
      await rm(layout, { recursive: true, force: true });
    }
    return image;
  }

  private async image(kind: 'docker' | 'oci', specs: LayerSpec[], platform: Platform, seed: string): Promise<ImageManifest> {
    const t = kind === 'docker'
      ? { manifest: MediaType.dockerManifest, config: MediaType.dockerConfig, layer: MediaType.dockerLayer }
      : { manifest: MediaType.ociManifest, config: MediaType.ociConfig, layer: MediaType.ociLayer };
    const built = await Promise.all(specs.map((s) => this.layer(s)));
    const configBytes = json({
      architecture: platform.architecture,
      os: platform.os,
      created: '1970-01-01T00:00:00Z',
      config: { Env: ['PATH=/usr/local/bin:/usr/bin:/bin'], Labels: { 'test.seed': String(seed) } },
      rootfs: { type: 'layers', diff_ids: built.map((l) => l.diffId) },
      history: built.map((_, i) => ({ created: '1970-01-01T00:00:00Z', created_by: `acr-mirror test layer ${i}` })),
    });
    const config = await this.storeBlob(configBytes, t.config);
    const layers = built.map((l) => ({ digest: l.digest, size: l.size, mediaType: t.layer, path: l.path }));
    const bytes = json({
      schemaVersion: 2,
      mediaType: t.manifest,
      config: descriptor(config),
      layers: layers.map(descriptor),
    });
    return { digest: sha256(bytes), mediaType: t.manifest, bytes, platform, config, layers };
  }

  private storeBlob(bytes: Buffer, mediaType: string): Promise<BlobFile> {
    const digest = sha256(bytes);
    let blob = this.blobs.get(digest);
    if (!blob) {
      const dir = join(this.dir, 'blobs');
      const path = join(dir, hex(digest));
      blob = mkdir(dir, { recursive: true })
        .then(() => writeFile(path, bytes))
        .then(() => ({ digest, size: bytes.length, mediaType, path }));
      this.blobs.set(digest, blob);
    }
    return blob;
  }

  private layer(spec: LayerSpec): Promise<Layer> {
    const key = createHash('sha256').update(`${spec.seed}\0${spec.size}`).digest('hex').slice(0, 32);
    let layer = this.layers.get(key);
    if (!layer) {
      layer = buildLayer(join(this.dir, 'layers'), key, spec.size);
      this.layers.set(key, layer);
    }
    return layer;
  }

  /** skopeo `dir:` layout: manifest.json, a list's instances as <hex>.manifest.json, blobs named by hex digest. */
  private async writeDirLayout(dir: string, image: BuiltImage): Promise<string> {
    await mkdir(dir, { recursive: true });
    await Promise.all([
      writeFile(join(dir, 'manifest.json'), image.manifest),
      writeFile(join(dir, 'version'), 'Directory Transport Version: 1.1\n'),
      ...(image.kind === 'docker-list'
        ? image.manifests.map((m) => writeFile(join(dir, `${hex(m.digest)}.manifest.json`), m.bytes))
        : []),
      ...image.blobs.map((b) => link(b.path, join(dir, hex(b.digest)))),
    ]);
    return `dir:${dir}`;
  }

  /** OCI image layout holding the index, its manifests and blobs, tagged by the ref.name annotation. */
  private async writeOciLayout(dir: string, image: BuiltImage): Promise<string> {
    const blobs = join(dir, 'blobs', 'sha256');
    await mkdir(blobs, { recursive: true });
    const index = {
      schemaVersion: 2,
      manifests: [
        {
          mediaType: image.mediaType,
          digest: image.digest,
          size: image.manifest.length,
          annotations: { 'org.opencontainers.image.ref.name': image.tag },
        },
      ],
    };
    await Promise.all([
      writeFile(join(dir, 'oci-layout'), json({ imageLayoutVersion: '1.0.0' })),
      writeFile(join(dir, 'index.json'), json(index)),
      writeFile(join(blobs, hex(image.digest)), image.manifest),
      ...image.manifests.map((m) => writeFile(join(blobs, hex(m.digest)), m.bytes)),
      ...image.blobs.map((b) => link(b.path, join(blobs, hex(b.digest)))),
    ]);
    return `oci:${dir}:${image.tag}`;
  }
}

interface Layer {
  digest: string;
  diffId: string;
  size: number;
  path: string;
}

/** payload.bin of AES-CTR keystream (seeded, incompressible) -> reproducible tar -> gzip -n, hashing both. */
async function buildLayer(dir: string, key: string, size: number): Promise<Layer> {
  const src = join(dir, key);
  const path = join(dir, `${key}.tar.gz`);
  await mkdir(src, { recursive: true });
  const payload = join(src, 'payload.bin');
  const cipher = createCipheriv('aes-128-ctr', Buffer.from(key.slice(0, 32), 'hex'), Buffer.alloc(16));
  await pipeline(Readable.from(zeros(size)), cipher, createWriteStream(payload));
  await chmod(payload, 0o644);

  const tar = spawn(
    'tar',
    ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '--format=gnu', '-C', src, '-cf', '-', 'payload.bin'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const gzip = spawn('gzip', ['-n'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const diff = createHash('sha256');
  const blob = createHash('sha256');
  let compressed = 0;
  await Promise.all([
    pipeline(tar.stdout, tap(diff), gzip.stdin),
    pipeline(gzip.stdout, tap(blob, (n) => (compressed += n)), createWriteStream(path)),
    succeeded(tar, 'tar'),
    succeeded(gzip, 'gzip'),
  ]);
  await rm(src, { recursive: true });
  return { digest: `sha256:${blob.digest('hex')}`, diffId: `sha256:${diff.digest('hex')}`, size: compressed, path };
}

function* zeros(size: number): Generator<Buffer> {
  const chunk = Buffer.alloc(Math.min(size, MiB));
  for (let left = size; left > 0; left -= chunk.length) yield left >= chunk.length ? chunk : chunk.subarray(0, left);
}

function tap(hash: Hash, onBytes?: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      onBytes?.(chunk.length);
      done(null, chunk);
    },
  });
}

function succeeded(child: ChildProcess, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${name} exited ${code}`))));
  });
}

function naming(spec: ImageSpec): Pick<BuiltImage, 'kind' | 'repo' | 'tag'> {
  return { kind: spec.kind, repo: spec.repo, tag: spec.tag };
}

function blobsOf(manifests: ImageManifest[]): BlobFile[] {
  const byDigest = new Map<string, BlobFile>();
  for (const m of manifests) for (const b of [m.config, ...m.layers]) byDigest.set(b.digest, b);
  return [...byDigest.values()];
}

function descriptor(b: BlobFile): { mediaType: string; digest: string; size: number } {
  return { mediaType: b.mediaType, digest: b.digest, size: b.size };
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value, null, 2));
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function hex(digest: string): string {
  return digest.slice('sha256:'.length);
}

/** sha256 of a local file, for comparing pulled blobs. */
export async function fileDigest(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}
