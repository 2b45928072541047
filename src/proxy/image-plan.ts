import { RegistryError } from '../http/errors.js';
import type { ImageRef } from '../oci/image-ref.js';
import { type Descriptor, type ManifestContent, parseManifest } from '../oci/manifest.js';
import { formatPlatform, type PlatformChoice, platformMatches } from '../oci/platform.js';
import type { Reference } from '../oci/reference.js';
import type { ManifestService } from './manifest-service.js';
import type { UpstreamTarget } from './target.js';

export interface BlobOfImage {
  digest: string;
  size: number;
}

/** What pulling one image reference takes, once its manifests are cached. */
export interface ImagePlan {
  /** The manifest or index the reference names. */
  digest: string;
  /** Platforms of the index entries chosen; empty for a single-platform manifest. */
  platforms: string[];
  /** Config and layer blobs of every chosen manifest, each once. */
  blobs: BlobOfImage[];
  /** The manifest or index itself and every chosen child manifest (what a bundle of the image holds). */
  manifests: string[];
  /** Requested platforms the index does not have. */
  missing: string[];
  /** Every platform the index has. */
  offered: string[];
}

export interface PlanDeps {
  manifests: ManifestService;
  /** Runs one upstream fetch under the caller's concurrency limit. */
  limit<T>(fetch: () => Promise<T>): Promise<T>;
}

/** Indexes of indexes are followed this deep. */
const MAX_DEPTH = 3;

/**
 * Fetches the manifest a reference names through the manifest service (cached like a client's pull), and for an
 * index the children for the chosen platforms, and lists the blobs those manifests reference.
 */
export async function planImage(target: UpstreamTarget, ref: ImageRef, choice: PlatformChoice, deps: PlanDeps): Promise<ImagePlan> {
  const fetch = async (reference: Reference) => {
    const m = await deps.limit(() => deps.manifests.get(target, reference, [], false));
    return { digest: m.digest, content: parseManifest(m.body!, m.digest) };
  };
  const root = await fetch(ref.reference);
  const blobs = new Map<string, number>();
  const platforms: string[] = [];
  const missing: string[] = [];
  const offered: string[] = [];
  const named = (entries: Descriptor[]) =>
    entries.flatMap((e) => (e.platform && e.platform.os !== 'unknown' ? [formatPlatform(e.platform)] : []));

  const manifests: string[] = [];
  const collect = async (content: ManifestContent, digest: string, depth: number): Promise<void> => {
    manifests.push(digest);
    if (content.kind === 'image') {
      for (const d of [content.config, ...content.layers]) blobs.set(d.digest, d.size);
      return;
    }
    if (depth >= MAX_DEPTH) throw new RegistryError('MANIFEST_INVALID', `index ${digest} nests indexes deeper than ${MAX_DEPTH}`);
    const chosen = depth === 0 ? choose(content.manifests, choice, missing) : content.manifests;
    if (depth === 0) {
      offered.push(...named(content.manifests));
      platforms.push(...named(chosen));
    }
    const children = await Promise.all(chosen.map((entry) => fetch({ kind: 'digest', digest: entry.digest })));
    for (const child of children) await collect(child.content, child.digest, depth + 1);
  };
  await collect(root.content, root.digest, 0);
  return { digest: root.digest, platforms, blobs: [...blobs].map(([digest, size]) => ({ digest, size })), manifests, missing, offered };
}

/** The index entries for the chosen platforms; requested platforms without an entry go to `missing`. */
function choose(entries: Descriptor[], choice: PlatformChoice, missing: string[]): Descriptor[] {
  if (choice === 'all') return entries;
  const chosen = new Set<Descriptor>();
  for (const wanted of choice) {
    const matching = entries.filter((e) => e.platform && platformMatches(wanted, e.platform));
    if (matching.length === 0) missing.push(formatPlatform(wanted));
    for (const e of matching) chosen.add(e);
  }
  return [...chosen];
}
