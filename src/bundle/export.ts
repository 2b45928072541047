import { createHash } from 'node:crypto';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pack as tarPack } from 'tar-stream';
import type { BlobStore } from '../cache/blob-store.js';
import type { ManifestStore } from '../cache/manifest-store.js';
import { RegistryError } from '../http/errors.js';
import { parseImageRef } from '../oci/image-ref.js';
import { parseManifest } from '../oci/manifest.js';
import { OCI_INDEX } from '../oci/media-types.js';
import type { PlatformChoice } from '../oci/platform.js';
import { referenceString } from '../oci/reference.js';
import type { BlobService } from '../proxy/blob-service.js';
import { planImage } from '../proxy/image-plan.js';
import type { ManifestService } from '../proxy/manifest-service.js';
import type { ReferrersService } from '../proxy/referrers-service.js';
import type { UpstreamTarget } from '../proxy/target.js';
import { IMAGE_NAME, INDEX_FILE, type IndexEntry, LAYOUT_FILE, REF_NAME, blobEntry } from './layout.js';
import { type HeldPlatforms, heldPlatforms } from './platforms.js';

export interface BundleSourceDeps {
  route(name: string): UpstreamTarget;
  manifests: ManifestService;
  blobs: BlobService;
  referrers: ReferrersService;
  manifestStore: ManifestStore;
  blobStore: BlobStore;
}

/** What a bundle will hold, with everything in it already in the cache. */
export interface BundlePlan {
  index: IndexEntry[];
  /** The images asked for (not their referrers), with the platforms the bundle holds of each. */
  images: (HeldPlatforms & { name: string })[];
  manifests: string[];
  blobs: { digest: string; size: number }[];
  /** Exact size of the tar that writeBundle produces. */
  bytes: number;
  /** sha256 of the index.json in the tar, for `acr-mirror import --expect-digest`. */
  indexDigest: string;
}

/**
 * Resolves the references like client pulls (routes, chosen platforms), warming the cache with whatever is
 * missing through the normal single-flight fills, and lists what the bundle will hold. With `referrers`, the
 * referrers of each image too, each as an index entry named `<name>@<digest>` (an import caches them by digest,
 * and lists them as referrers from there).
 */
export async function planBundle(deps: BundleSourceDeps, refs: string[], choice: PlatformChoice, referrers = false): Promise<BundlePlan> {
  const index: IndexEntry[] = [];
  const images: BundlePlan['images'] = [];
  const manifests = new Set<string>();
  const blobs = new Map<string, number>();
  const referrerEntries = new Set<string>();
  for (const value of refs) {
    const ref = parseImageRef(value);
    const target = deps.route(ref.name);
    const plan = await planImage(target, ref.reference, choice, { manifests: deps.manifests, limit: (f) => f(), ...(referrers ? { referrers: deps.referrers } : {}) });
    if (plan.missing.length) throw new RegistryError('MANIFEST_UNKNOWN', `${value} has no ${plan.missing.join(', ')} image (it offers ${plan.offered.join(', ')})`);
    for (const b of plan.blobs) await deps.blobs.ensure(target, b.digest);
    for (const b of plan.blobs) blobs.set(b.digest, b.size);
    for (const m of plan.manifests) manifests.add(m);
    const root = deps.manifestStore.get(plan.digest)!;
    const name = `${ref.name}${ref.reference.kind === 'tag' ? ':' : '@'}${referenceString(ref.reference)}`;
    images.push({ name, ...heldPlatforms(parseManifest(root.body, root.digest), (d) => plan.manifests.includes(d)) });
    index.push({
      mediaType: root.mediaType,
      digest: root.digest,
      size: root.size,
      annotations: { [IMAGE_NAME]: name, ...(ref.reference.kind === 'tag' ? { [REF_NAME]: name } : {}) },
    });
    for (const digest of plan.referrers.filter((d) => !referrerEntries.has(d))) {
      referrerEntries.add(digest);
      const m = deps.manifestStore.get(digest)!;
      index.push({ mediaType: m.mediaType, digest, size: m.size, annotations: { [IMAGE_NAME]: `${ref.name}@${digest}` } });
    }
  }
  const entryBytes = (size: number) => 512 + Math.ceil(size / 512) * 512;
  const indexBody = indexDocument(index);
  const bytes =
    entryBytes(Buffer.byteLength(LAYOUT_FILE.body)) +
    entryBytes(indexBody.length) +
    [...manifests].reduce((n, d) => n + entryBytes(deps.manifestStore.get(d)!.size), 0) +
    [...blobs.values()].reduce((n, size) => n + entryBytes(size), 0) +
    1024;
  const indexDigest = `sha256:${createHash('sha256').update(indexBody).digest('hex')}`;
  return { index, images, manifests: [...manifests], blobs: [...blobs].map(([digest, size]) => ({ digest, size })), bytes, indexDigest };
}

/** Writes the planned images as an OCI image layout in a tar (readable by skopeo's oci-archive transport). */
export async function writeBundle(deps: BundleSourceDeps, plan: BundlePlan, out: Writable): Promise<void> {
  const tar = tarPack();
  const writing = pipeline(tar, out);
  const add = (name: string, body: Buffer | string) => new Promise<void>((resolve, reject) => tar.entry({ name, mtime: new Date(0) }, body, (err) => (err ? reject(err) : resolve())));
  try {
    await add(LAYOUT_FILE.name, LAYOUT_FILE.body);
    await add(INDEX_FILE, indexDocument(plan.index));
    for (const digest of plan.manifests) await add(blobEntry(digest), deps.manifestStore.get(digest)!.body);
    for (const { digest, size } of plan.blobs) {
      const blob = await deps.blobStore.open(digest);
      if (!blob) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} left the cache while the bundle was written`);
      const entry = tar.entry({ name: blobEntry(digest), size, mtime: new Date(0) });
      await pipeline(blob.stream(), entry);
    }
    tar.finalize();
  } catch (err) {
    tar.destroy(err as Error);
  }
  await writing;
}

function indexDocument(index: IndexEntry[]): Buffer {
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: index }));
}
