import { RegistryError } from '../http/errors.js';
import type { ManifestService } from '../proxy/manifest-service.js';
import type { UpstreamTarget } from '../proxy/target.js';
import { parseDigest } from '../registry/reference.js';
import type { ImageRef } from './image-ref.js';
import { formatPlatform, type Platform, type PlatformChoice, platformMatches } from './platforms.js';

export interface BlobToWarm {
  digest: string;
  size: number;
}

/** What warming one image reference takes, once its manifests are cached. */
export interface WarmPlan {
  /** The manifest or index the reference names. */
  digest: string;
  /** Platforms of the index entries chosen; empty for a single-platform manifest. */
  platforms: string[];
  /** Config and layer blobs of every chosen manifest, each once. */
  blobs: BlobToWarm[];
  /** The manifest or index itself and every chosen child manifest (what a bundle of the image holds). */
  manifests: string[];
  /** Requested platforms the index does not have. */
  missing: string[];
  /** Every platform the index has. */
  offered: string[];
}

export interface PlanDeps {
  manifests: ManifestService;
  /** Runs one upstream fetch under the warm concurrency limit. */
  limit<T>(fetch: () => Promise<T>): Promise<T>;
}

interface Descriptor {
  digest: string;
  size: number;
  platform?: Platform;
}

interface ManifestDoc {
  manifests?: Descriptor[];
  config?: Descriptor;
  layers?: Descriptor[];
}

/** Indexes of indexes are followed this deep. */
const MAX_DEPTH = 3;

/**
 * Fetches the manifest a reference names through the manifest service (cached like a client's pull), and for an
 * index the children for the chosen platforms, and lists the blobs those manifests reference.
 */
export async function planWarm(target: UpstreamTarget, ref: ImageRef, choice: PlatformChoice, deps: PlanDeps): Promise<WarmPlan> {
  const fetch = async (reference: ImageRef['reference']) => {
    const m = await deps.limit(() => deps.manifests.get(target, reference, [], false));
    return { digest: m.digest, doc: parse(m.body!, m.digest) };
  };
  const root = await fetch(ref.reference);
  const blobs = new Map<string, number>();
  const platforms: string[] = [];
  const missing: string[] = [];
  const offered: string[] = [];
  const named = (entries: Descriptor[]) =>
    entries.flatMap((e) => (e.platform && e.platform.os !== 'unknown' ? [formatPlatform(e.platform)] : []));

  const manifests: string[] = [];
  const collect = async (doc: ManifestDoc, digest: string, depth: number): Promise<void> => {
    manifests.push(digest);
    if (doc.manifests) {
      if (depth >= MAX_DEPTH) throw new RegistryError('MANIFEST_INVALID', `index ${digest} nests indexes deeper than ${MAX_DEPTH}`);
      const chosen = depth === 0 ? choose(doc.manifests, choice, missing) : doc.manifests;
      if (depth === 0) {
        offered.push(...named(doc.manifests));
        platforms.push(...named(chosen));
      }
      const children = await Promise.all(chosen.map((entry) => fetch({ kind: 'digest', digest: parseDigest(entry.digest) })));
      for (const child of children) await collect(child.doc, child.digest, depth + 1);
      return;
    }
    if (!doc.config || !Array.isArray(doc.layers)) {
      throw new RegistryError('MANIFEST_INVALID', `manifest ${digest} is neither an image manifest nor an index`);
    }
    for (const d of [doc.config, ...doc.layers]) blobs.set(parseDigest(d.digest), d.size);
  };
  await collect(root.doc, root.digest, 0);
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

function parse(body: Buffer, digest: string): ManifestDoc {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    throw new RegistryError('MANIFEST_INVALID', `manifest ${digest} is not JSON`);
  }
  if (typeof doc !== 'object' || doc === null) throw new RegistryError('MANIFEST_INVALID', `manifest ${digest} is not a JSON object`);
  const isDescriptor = (d: unknown): d is Descriptor =>
    typeof d === 'object' && d !== null && typeof (d as Descriptor).digest === 'string' && Number.isSafeInteger((d as Descriptor).size);
  const m = doc as Record<string, unknown>;
  const list = (v: unknown) => (Array.isArray(v) && v.every(isDescriptor) ? v : undefined);
  const manifests = list(m.manifests);
  const layers = list(m.layers);
  return {
    ...(manifests ? { manifests } : {}),
    ...(isDescriptor(m.config) ? { config: m.config } : {}),
    ...(layers ? { layers } : {}),
  };
}
