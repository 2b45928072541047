import { type FakeImage, sha256 } from './fake-upstream.js';
import type { TarEntry } from './tar.js';

export const LAYOUT: TarEntry = ['oci-layout', JSON.stringify({ imageLayoutVersion: '1.0.0' })];
export const blobEntry = (body: Buffer | string): TarEntry => [`blobs/sha256/${sha256(body).slice(7)}`, body];
export const indexEntry = (manifests: unknown[]): TarEntry => ['index.json', JSON.stringify({ schemaVersion: 2, manifests })];

/** The index.json entry naming each image as `name`, as acr-mirror export writes it. */
export function imageIndex(images: { name: string; image: FakeImage }[]): TarEntry {
  return indexEntry(
    images.map(({ name, image }) => ({
      mediaType: image.mediaType,
      digest: image.manifestDigest,
      size: image.manifest.length,
      annotations: { 'io.acr-mirror.image.name': name, 'org.opencontainers.image.ref.name': name },
    })),
  );
}

/** The entries of a bundle holding the images (layout, index, manifests, blobs). */
export function bundleEntries(images: { name: string; image: FakeImage }[]): TarEntry[] {
  return [
    LAYOUT,
    imageIndex(images),
    ...images.flatMap(({ image }) => [blobEntry(image.manifest), ...[...image.blobs.values()].map(blobEntry)]),
  ];
}
