/** OCI image layout inside a bundle tar: oci-layout, index.json, blobs/sha256/<hex>. */
export const LAYOUT_FILE = { name: 'oci-layout', body: JSON.stringify({ imageLayoutVersion: '1.0.0' }) };
export const INDEX_FILE = 'index.json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
/** The tag as skopeo's oci-archive transport looks it up. */
export const REF_NAME = 'org.opencontainers.image.ref.name';
/** The full name the image was exported under (repository as clients name it, and tag or digest). */
export const IMAGE_NAME = 'io.acr-mirror.image.name';

export const blobEntry = (digest: string) => `blobs/sha256/${digest.slice('sha256:'.length)}`;

export interface IndexEntry {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}
