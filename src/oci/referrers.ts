import { isDigest, type Digest } from './digest.js';
import { OCI_INDEX } from './media-types.js';

/**
 * One entry of a referrers list (OCI distribution-spec 1.1): the descriptor of a manifest whose `subject` is the
 * digest asked about. Kept as the registry sent it (artifactType, annotations and any other field), so a list is
 * served exactly as the upstream listed it.
 */
export type ReferrerDescriptor = Record<string, unknown> & { mediaType: string; digest: Digest; size: number; artifactType?: string };

/** The header saying which filters a referrers answer already applied. */
export const FILTERS_APPLIED_HEADER = 'oci-filters-applied';

/** A referrers answer: an OCI image index of the referrers' descriptors (empty when there are none). */
export function referrersIndex(manifests: readonly ReferrerDescriptor[]): Buffer {
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }));
}

/**
 * The descriptors of a referrers answer or of a referrers-tag index, or null when the body is not such an index.
 * Entries that are not descriptors of a manifest are left out (a list is the registry's, not a client's input).
 */
export function parseReferrers(body: Buffer): ReferrerDescriptor[] | null {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return null;
  }
  const manifests = typeof doc === 'object' && doc !== null ? (doc as { manifests?: unknown }).manifests : undefined;
  if (!Array.isArray(manifests)) return null;
  return manifests.filter(isReferrerDescriptor);
}

/** The entries of one artifact type (the `artifactType` query parameter); all of them when no type is given. */
export function filterReferrers(manifests: readonly ReferrerDescriptor[], artifactType: string | undefined): ReferrerDescriptor[] {
  return artifactType === undefined ? [...manifests] : manifests.filter((d) => d.artifactType === artifactType);
}

/** The referrers tag schema's tag for a digest: `sha256-<hex>` (for registries without the Referrers API). */
export function referrersTag(digest: Digest): string {
  return digest.replace(':', '-');
}

function isReferrerDescriptor(value: unknown): value is ReferrerDescriptor {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const d = value as Record<string, unknown>;
  return (
    typeof d.mediaType === 'string' &&
    isDigest(d.digest) &&
    Number.isSafeInteger(d.size) &&
    (d.size as number) >= 0 &&
    (d.artifactType === undefined || typeof d.artifactType === 'string')
  );
}

/**
 * The referrers descriptor of a manifest whose subject is `subject` (null otherwise), as the distribution-spec
 * says a registry lists it: artifactType from the manifest's artifactType, else its config's media type, and
 * the manifest's annotations.
 */
export function asReferrer(m: { digest: string; mediaType: string; size: number; body: Buffer }, subject: Digest): ReferrerDescriptor | null {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(m.body.toString('utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
  if (typeof doc !== 'object' || doc === null || (doc.subject as { digest?: unknown } | undefined)?.digest !== subject || !isDigest(m.digest)) return null;
  const configType = (doc.config as { mediaType?: unknown } | undefined)?.mediaType;
  const artifactType = typeof doc.artifactType === 'string' ? doc.artifactType : typeof configType === 'string' ? configType : undefined;
  const annotations = typeof doc.annotations === 'object' && doc.annotations !== null ? doc.annotations : undefined;
  return { mediaType: m.mediaType, digest: m.digest, size: m.size, ...(artifactType ? { artifactType } : {}), ...(annotations ? { annotations } : {}) };
}
