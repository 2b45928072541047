import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { extract as tarExtract } from 'tar-stream';
import type { BlobStore, TempBlob } from '../cache/blob-store.js';
import type { ManifestStore, StoredManifest } from '../cache/manifest-store.js';
import { RegistryError } from '../http/errors.js';
import { parseImageRef } from '../oci/image-ref.js';
import { type Descriptor, type ManifestContent, manifestContent, parseManifest } from '../oci/manifest.js';
import { OCI_MANIFEST } from '../oci/media-types.js';
import type { UpstreamTarget } from '../proxy/target.js';
import { entryDigest, IMAGE_NAME, INDEX_FILE, LAYOUT_FILE, REF_NAME } from './layout.js';

export interface BundleImportDeps {
  route(name: string): UpstreamTarget;
  manifestStore: ManifestStore;
  blobStore: BlobStore;
}

export interface ImportReport {
  images: string[];
  manifests: number;
  blobs: number;
  bytes: number;
}

const MAX_DOCUMENT = 4 * 1024 * 1024;

/**
 * Reads an OCI image layout tar (as `acr-mirror export` or `skopeo copy ... oci-archive:` write it), verifies
 * every blob against its name while staging it, checks every image is complete, and only then adds the images
 * to the cache under their route names (tags as exported). A corrupt, truncated or incomplete bundle is
 * refused with the digest or entry at fault, and the cache is left as it was.
 */
export async function importBundle(deps: BundleImportDeps, input: Readable): Promise<ImportReport> {
  const staged = new Map<string, { temp: TempBlob; size: number }>();
  try {
    let index: Descriptor[] | null = null;
    const extract = tarExtract();
    input.on('error', (err) => extract.destroy(err));
    input.pipe(extract);
    try {
      for await (const entry of extract) {
        const name = entry.header.name.replace(/^\.\//, '');
        const blob = entryDigest(name);
        if (name === LAYOUT_FILE.name) {
          const layout = JSON.parse((await readAll(entry)).toString('utf8')) as { imageLayoutVersion?: unknown };
          if (layout.imageLayoutVersion !== '1.0.0') throw bundleError(`unsupported OCI layout version ${String(layout.imageLayoutVersion)}`);
        } else if (name === INDEX_FILE) {
          index = parseIndex(await readAll(entry));
        } else if (blob) {
          staged.set(blob, { temp: await stage(deps.blobStore, blob, entry), size: entry.header.size ?? 0 });
        } else {
          entry.resume();
        }
      }
    } catch (err) {
      if (err instanceof RegistryError) throw err;
      throw bundleError(`the bundle is truncated or not a tar archive (${(err as Error).message})`);
    }
    if (!index) throw bundleError(`the bundle has no ${INDEX_FILE}`);

    const manifests = new Map<string, StoredManifest>();
    const layers = new Set<string>();
    const collect = async (d: { digest: string; mediaType?: string }, depth: number): Promise<void> => {
      if (manifests.has(d.digest)) return;
      const file = staged.get(d.digest);
      if (!file) throw bundleError(`manifest ${d.digest} is listed but not in the bundle`);
      const body = await readFile(file.temp.path);
      const content = parseBundled(body, d.digest);
      manifests.set(d.digest, { digest: d.digest, mediaType: d.mediaType ?? content.mediaType ?? OCI_MANIFEST, size: body.length, body });
      if (content.kind === 'index') {
        if (depth > 2) throw bundleError(`index ${d.digest} nests too deep`);
        // an index may list platforms that were not exported: only the ones present are added
        for (const child of content.manifests) if (staged.has(child.digest)) await collect(child, depth + 1);
        return;
      }
      for (const blob of [content.config, ...content.layers]) {
        if (!staged.has(blob.digest)) throw bundleError(`image ${d.digest} needs blob ${blob.digest}, which is not in the bundle`);
        layers.add(blob.digest);
      }
    };
    const images: { name: string; tag: string | null; entry: Descriptor; target: UpstreamTarget }[] = [];
    for (const entry of index) {
      const name = entry.annotations?.[IMAGE_NAME] ?? entry.annotations?.[REF_NAME];
      if (!name) throw bundleError(`index entry ${entry.digest} has no image name annotation (${IMAGE_NAME})`);
      const ref = parseImageRef(name);
      if (ref.reference.kind === 'digest' && ref.reference.digest !== entry.digest) throw bundleError(`${name} does not name index entry ${entry.digest}`);
      images.push({ name, tag: ref.reference.kind === 'tag' ? ref.reference.tag : null, entry, target: deps.route(ref.name) });
      await collect(entry, 0);
    }

    // everything verified: now the cache changes
    let bytes = 0;
    for (const digest of layers) {
      const { temp, size } = staged.get(digest)!;
      staged.delete(digest);
      await deps.blobStore.commit(temp, digest, size);
      bytes += size;
    }
    for (const m of manifests.values()) deps.manifestStore.put(m);
    for (const image of images) {
      if (image.tag) deps.manifestStore.setTag(image.target.client.name, image.target.repo, image.tag, image.entry.digest);
    }
    return { images: images.map((i) => i.name), manifests: manifests.size, blobs: layers.size, bytes };
  } finally {
    for (const { temp } of staged.values()) {
      await temp.handle.close().catch(() => {});
      await deps.blobStore.discard(temp);
    }
  }
}

/** Writes an entry to a temp blob while hashing it; refuses it unless it matches its name. */
async function stage(store: BlobStore, digest: string, entry: AsyncIterable<unknown>): Promise<TempBlob> {
  const temp = await store.createTemp(digest);
  const hash = createHash('sha256');
  let offset = 0;
  try {
    for await (const chunk of entry) {
      hash.update(chunk as Buffer);
      await temp.handle.write(chunk as Buffer, 0, (chunk as Buffer).length, offset);
      offset += (chunk as Buffer).length;
    }
    const actual = `sha256:${hash.digest('hex')}`;
    if (actual !== digest) throw bundleError(`blob ${digest} in the bundle does not match its digest (content is ${actual})`);
    return temp;
  } catch (err) {
    await temp.handle.close().catch(() => {});
    await store.discard(temp);
    throw err;
  }
}

async function readAll(entry: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = [];
  let total = 0;
  for await (const chunk of entry) {
    total += (chunk as Buffer).length;
    if (total > MAX_DOCUMENT) throw bundleError('a layout document is larger than 4 MiB');
    parts.push(chunk as Buffer);
  }
  return Buffer.concat(parts);
}

function parseIndex(body: Buffer): Descriptor[] {
  const content = manifestContent(body, INDEX_FILE);
  if (content?.kind !== 'index') throw bundleError(`${INDEX_FILE} is not an OCI index`);
  return content.manifests;
}

function parseBundled(body: Buffer, digest: string): ManifestContent {
  try {
    return parseManifest(body, digest);
  } catch (err) {
    throw bundleError((err as Error).message);
  }
}

function bundleError(message: string): RegistryError {
  return new RegistryError('MANIFEST_INVALID', `bundle rejected: ${message}`);
}
