import { RegistryError } from '../http/errors.js';
import { type Digest, isDigest } from './digest.js';
import type { Platform } from './platform.js';

/** A content descriptor as manifests and indexes list them. */
export interface Descriptor {
  mediaType?: string;
  digest: Digest;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
}

/** What a manifest or index body points at: an index lists manifests, an image manifest a config and layers. */
export type ManifestContent = { mediaType?: string; subject?: Descriptor } & (
  | { kind: 'index'; manifests: Descriptor[] }
  | { kind: 'image'; config: Descriptor; layers: Descriptor[] }
);

/**
 * The descriptors of a manifest or index body. A list counts only when every entry is a descriptor with a sha256
 * digest and a size; a document with `manifests` is an index even if it also has a config. Throws
 * MANIFEST_INVALID naming `digest` when the body is not JSON, or neither an image manifest nor an index (Docker
 * schema 1 manifests, for one, have no descriptors).
 */
export function parseManifest(body: Buffer, digest: string): ManifestContent {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    throw new RegistryError('MANIFEST_INVALID', `manifest ${digest} is not JSON`);
  }
  if (typeof doc !== 'object' || doc === null) throw new RegistryError('MANIFEST_INVALID', `manifest ${digest} is not a JSON object`);
  const m = doc as Record<string, unknown>;
  const common = {
    ...(typeof m.mediaType === 'string' ? { mediaType: m.mediaType } : {}),
    ...(isDescriptor(m.subject) ? { subject: descriptor(m.subject) } : {}),
  };
  const manifests = descriptorList(m.manifests);
  if (manifests) return { kind: 'index', manifests, ...common };
  const layers = descriptorList(m.layers);
  if (isDescriptor(m.config) && layers) return { kind: 'image', config: descriptor(m.config), layers, ...common };
  throw new RegistryError('MANIFEST_INVALID', `manifest ${digest} is neither an image manifest nor an index`);
}

/** parseManifest, or null for a body without descriptors (such as a Docker schema 1 manifest). */
export function manifestContent(body: Buffer, digest: string): ManifestContent | null {
  try {
    return parseManifest(body, digest);
  } catch {
    return null;
  }
}

/** Every digest a manifest or index points at (config, layers, child manifests, subject), each once. */
export function referencedDigests(content: ManifestContent): Digest[] {
  const all = content.kind === 'index' ? content.manifests : [content.config, ...content.layers];
  return [...new Set([...all, ...(content.subject ? [content.subject] : [])].map((d) => d.digest))];
}

type RawDescriptor = Record<string, unknown> & { digest: Digest; size: number };

function isDescriptor(value: unknown): value is RawDescriptor {
  if (typeof value !== 'object' || value === null) return false;
  const d = value as Record<string, unknown>;
  return isDigest(d.digest) && Number.isSafeInteger(d.size) && (d.size as number) >= 0;
}

function descriptorList(value: unknown): Descriptor[] | undefined {
  return Array.isArray(value) && value.every(isDescriptor) ? value.map(descriptor) : undefined;
}

function descriptor(d: RawDescriptor): Descriptor {
  return {
    digest: d.digest,
    size: d.size,
    ...(typeof d.mediaType === 'string' ? { mediaType: d.mediaType } : {}),
    ...(isPlatform(d.platform) ? { platform: d.platform } : {}),
    ...(isAnnotations(d.annotations) ? { annotations: d.annotations } : {}),
  };
}

function isPlatform(value: unknown): value is Platform {
  if (typeof value !== 'object' || value === null) return false;
  const p = value as Record<string, unknown>;
  return typeof p.os === 'string' && typeof p.architecture === 'string' && (p.variant === undefined || typeof p.variant === 'string');
}

function isAnnotations(value: unknown): value is Record<string, string> {
  return typeof value === 'object' && value !== null && Object.values(value).every((v) => typeof v === 'string');
}
