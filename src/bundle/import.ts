import type { Readable } from 'node:stream';
import { extract as tarExtract } from 'tar-stream';
import type { BlobStore, BlobWriter } from '../cache/blob-store.js';
import { DigestHasher, type VerifiedDigest } from '../cache/digest.js';
import type { ManifestStore, StoredManifest } from '../cache/manifest-store.js';
import { RegistryError } from '../http/errors.js';
import { parseImageRef } from '../oci/image-ref.js';
import { type Descriptor, type ManifestContent, manifestContent, parseManifest } from '../oci/manifest.js';
import { isManifestMediaType, OCI_MANIFEST } from '../oci/media-types.js';
import type { UpstreamTarget } from '../proxy/target.js';
import { truncate } from '../util/truncate.js';
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
  const staged = new Map<string, StagedBlob>();
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
          await staged.get(blob)?.writer.close(); // the same blob twice in one tar
          staged.set(blob, await stage(deps.blobStore, blob, entry));
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
      if (file.verified.size > MAX_DOCUMENT) throw bundleError(`manifest ${d.digest} is larger than the ${MAX_DOCUMENT} byte limit`);
      const body = await readStaged(file);
      const content = parseBundled(body, d.digest);
      const mediaType = d.mediaType ?? content.mediaType ?? OCI_MANIFEST;
      if (!isManifestMediaType(mediaType)) throw bundleError(`manifest ${d.digest} has media type ${truncate(mediaType)}, which is not a manifest type`);
      manifests.set(d.digest, { digest: d.digest, mediaType, size: body.length, body });
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
      const { writer, verified } = staged.get(digest)!;
      await writer.commit(verified);
      bytes += verified.size;
    }
    for (const m of manifests.values()) deps.manifestStore.put(m);
    for (const image of images) {
      if (image.tag) deps.manifestStore.setTag(image.target.client.name, image.target.repo, image.tag, image.entry.digest);
    }
    return { images: images.map((i) => i.name), manifests: manifests.size, blobs: layers.size, bytes };
  } finally {
    for (const { writer } of staged.values()) await writer.close();
  }
}

interface StagedBlob {
  writer: BlobWriter;
  verified: VerifiedDigest;
}

/** Writes an entry to a store writer while hashing it; refuses it unless it matches its name. */
async function stage(store: BlobStore, digest: string, entry: AsyncIterable<unknown>): Promise<StagedBlob> {
  const writer = await store.createWriter(digest);
  const hasher = new DigestHasher(digest);
  let offset = 0;
  try {
    for await (const chunk of entry) {
      hasher.add(offset, chunk as Buffer);
      await writer.write(offset, chunk as Buffer);
      offset += (chunk as Buffer).length;
    }
    const result = hasher.verify();
    if ('actual' in result) throw bundleError(`blob ${digest} in the bundle does not match its digest (content is ${result.actual})`);
    return { writer, verified: result.verified };
  } catch (err) {
    await writer.close();
    throw err;
  }
}

/** The bytes of a staged (small) document. */
async function readStaged(blob: StagedBlob): Promise<Buffer> {
  const body = Buffer.allocUnsafe(blob.verified.size);
  for (let at = 0; at < body.length; ) {
    const n = await blob.writer.read(body.subarray(at), at);
    if (n === 0) throw new Error(`staged blob ${blob.verified.digest} ends at byte ${at}`);
    at += n;
  }
  return body;
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
