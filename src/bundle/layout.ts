import { type Digest, isDigest } from '../oci/digest.js';

/** OCI image layout inside a bundle tar: oci-layout, index.json, blobs/sha256/<hex>. */
export const LAYOUT_FILE = { name: 'oci-layout', body: JSON.stringify({ imageLayoutVersion: '1.0.0' }) };
export const INDEX_FILE = 'index.json';
/** The tag as skopeo's oci-archive transport looks it up. */
export const REF_NAME = 'org.opencontainers.image.ref.name';
/** The full name the image was exported under (repository as clients name it, and tag or digest). */
export const IMAGE_NAME = 'io.acr-mirror.image.name';

const BLOBS_DIR = 'blobs/sha256/';

export const blobEntry = (digest: string) => `${BLOBS_DIR}${digest.slice('sha256:'.length)}`;

/** The digest a blobs/sha256/<hex> entry holds, or null for any other entry name. */
export function entryDigest(name: string): Digest | null {
  const digest = `sha256:${name.slice(BLOBS_DIR.length)}`;
  return name.startsWith(BLOBS_DIR) && isDigest(digest) ? digest : null;
}

export interface IndexEntry {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}
