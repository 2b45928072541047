import type { Readable } from 'node:stream';
import type { BlobStore } from '../cache/blob-store.js';
import type { ManifestStore, StoredManifest } from '../cache/manifest-store.js';
import { type ManifestContent, parseManifest } from '../oci/manifest.js';
import { isManifestMediaType, OCI_MANIFEST } from '../oci/media-types.js';
import type { UpstreamTarget } from '../proxy/target.js';
import { truncate } from '../util/truncate.js';
import { bundleError } from './bundle-error.js';
import { type BundledImage, bundledImages, checkIndex, checkRulesGiven, type ImportRules, type TagChange, tagChanges } from './import-rules.js';
import { type HeldPlatforms, heldPlatforms } from './platforms.js';
import { type BundleLimits, DEFAULT_LIMITS, readStaged, type StagedBlob, stageBundle } from './staging.js';

export interface BundleImportDeps {
  route(name: string): UpstreamTarget;
  manifestStore: ManifestStore;
  blobStore: BlobStore;
  /** storage.max_size, or null. */
  maxBytes: number | null;
}

/** An image the import added: its name in the bundle (how clients pull it) and where the cache keeps it. */
export interface ImportedImage extends HeldPlatforms {
  name: string;
  digest: string;
  upstream: string;
  /** The repository on the upstream (the route may rename it). */
  repository: string;
}

export interface ImportReport {
  images: string[];
  added: ImportedImage[];
  /** sha256 of the bundle's index.json (what `acr-mirror export` printed). */
  indexDigest: string;
  tags: TagChange[];
  manifests: number;
  blobs: number;
  bytes: number;
}

/**
 * Reads an OCI image layout tar (as `acr-mirror export` or `skopeo copy ... oci-archive:` write it), verifies
 * every blob against its name while staging it, checks every image is complete and allowed by the rules (names,
 * tag moves, expected index.json), and only then adds the images to the cache under their route names. A bundle
 * refused for any reason is refused with the digest, entry or name at fault, and the cache is left as it was.
 */
export async function importBundle(
  deps: BundleImportDeps,
  input: Readable,
  rules: ImportRules & { limits?: Partial<BundleLimits> },
): Promise<ImportReport> {
  checkRulesGiven(rules);
  const limits = { ...DEFAULT_LIMITS, ...rules.limits };
  const staged = new Map<string, StagedBlob>();
  try {
    let images: BundledImage[] = [];
    let indexDigest = '';
    await stageBundle(input, {
      store: deps.blobStore,
      limits,
      maxBytes: deps.maxBytes,
      staged,
      checkIndex: (index, digest) => {
        images = bundledImages(index);
        checkIndex(rules, images, digest);
        indexDigest = digest;
      },
    });
    const { manifests, layers } = await collectImages(images, staged, limits.maxDocument);
    const targets = images.map((image) => {
      const target = deps.route(image.repository);
      return { ...image, upstream: target.client.name, repo: target.repo };
    });
    tagChanges(deps.manifestStore, targets, rules.replace);

    // everything verified and allowed: now the cache changes
    let bytes = 0;
    for (const digest of layers) {
      const { writer, verified } = staged.get(digest)!;
      await writer.commit(verified);
      bytes += verified.size;
    }
    // checked again with no await until the tags are set: a tag moved meanwhile (a pull) is not overwritten unseen
    const tags = tagChanges(deps.manifestStore, targets, rules.replace);
    for (const m of manifests.values()) deps.manifestStore.put(m);
    for (const image of targets) {
      if (image.tag) deps.manifestStore.setTag(image.upstream, image.repo, image.tag, image.entry.digest);
    }
    const added = targets.map((t) => ({
      name: t.name,
      digest: t.entry.digest,
      upstream: t.upstream,
      repository: t.repo,
      ...heldPlatforms(parseManifest(manifests.get(t.entry.digest)!.body, t.entry.digest), (d) => manifests.has(d)),
    }));
    return { images: images.map((i) => i.name), added, indexDigest, tags, manifests: manifests.size, blobs: layers.size, bytes };
  } finally {
    for (const { writer } of staged.values()) await writer.close();
  }
}

/** The manifests the images need (read from the staged blobs) and the blobs those reference, all present. */
async function collectImages(images: BundledImage[], staged: Map<string, StagedBlob>, maxDocument: number) {
  const manifests = new Map<string, StoredManifest>();
  const layers = new Set<string>();
  const collect = async (d: { digest: string; mediaType?: string }, depth: number): Promise<void> => {
    if (manifests.has(d.digest)) return;
    const file = staged.get(d.digest);
    if (!file) throw bundleError(`manifest ${d.digest} is listed but not in the bundle`);
    const body = await readStaged(file, `manifest ${d.digest}`, maxDocument);
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
  for (const image of images) await collect(image.entry, 0);
  return { manifests, layers };
}

function parseBundled(body: Buffer, digest: string): ManifestContent {
  try {
    return parseManifest(body, digest);
  } catch (err) {
    throw bundleError((err as Error).message);
  }
}
