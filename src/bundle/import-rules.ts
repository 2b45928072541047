import type { ManifestStore } from '../cache/manifest-store.js';
import { RegistryError } from '../http/errors.js';
import { parseImageRef } from '../oci/image-ref.js';
import type { Descriptor } from '../oci/manifest.js';
import { bundleError } from './bundle-error.js';
import { IMAGE_NAME, REF_NAME } from './layout.js';

/** What an import may change, as the operator said (CLI --name/--names-from, --replace, --expect-digest). */
export interface ImportRules {
  /** Repository names (as clients name them) the bundle may add images to; no others. */
  names: string[];
  /** Whether an existing tag may be moved to another digest. */
  replace: boolean;
  /** The sha256 of the bundle's index.json, as `acr-mirror export` printed it. */
  expectDigest?: string | undefined;
}

/** An image the bundle's index.json names. */
export interface BundledImage {
  /** As exported: repository and tag or digest, e.g. team/app:1.2. */
  name: string;
  repository: string;
  tag: string | null;
  entry: Descriptor;
}

/** What the import did (or would do) to a tag; old is null for a tag the cache did not have. */
export interface TagChange {
  image: string;
  change: 'added' | 'replaced' | 'unchanged';
  old: string | null;
  new: string;
}

export function checkRulesGiven(rules: ImportRules): void {
  if (rules.names.length > 0) return;
  throw new RegistryError(
    'INVALID_REQUEST',
    'name the repositories the bundle may add (acr-mirror import --name or --names-from; names= on the API): an import adds no other',
  );
}

/** The images index.json names; refuses unnamed entries, a digest name that is not the entry's, and a tag named twice. */
export function bundledImages(index: Descriptor[]): BundledImage[] {
  const images: BundledImage[] = [];
  const tags = new Map<string, string>();
  for (const entry of index) {
    const name = entry.annotations?.[IMAGE_NAME] ?? entry.annotations?.[REF_NAME];
    if (!name) throw bundleError(`index entry ${entry.digest} has no image name annotation (${IMAGE_NAME})`);
    const ref = parseImageRef(name);
    if (ref.reference.kind === 'digest' && ref.reference.digest !== entry.digest) throw bundleError(`${name} does not name index entry ${entry.digest}`);
    const tag = ref.reference.kind === 'tag' ? ref.reference.tag : null;
    if (tag !== null && (tags.get(name) ?? entry.digest) !== entry.digest) throw bundleError(`it names ${name} twice, for different digests`);
    if (tag !== null) tags.set(name, entry.digest);
    images.push({ name, repository: ref.name, tag, entry });
  }
  return images;
}

/** Refuses an index.json other than the one the operator expects, and images of repositories not allowed. */
export function checkIndex(rules: ImportRules, images: BundledImage[], indexDigest: string): void {
  if (rules.expectDigest !== undefined && rules.expectDigest !== indexDigest) {
    throw bundleError(`its index.json is ${indexDigest}, not the expected ${rules.expectDigest}`);
  }
  const allowed = new Set(rules.names);
  const others = [...new Set(images.map((i) => i.repository).filter((name) => !allowed.has(name)))];
  if (others.length > 0) {
    throw bundleError(`it names ${others.join(', ')}, which this import may not add (allowed: ${rules.names.join(', ')})`, 'DENIED');
  }
}

/** The change each tagged image makes; refuses moving an existing tag unless rules.replace. */
export function tagChanges(
  manifests: ManifestStore,
  images: (BundledImage & { upstream: string; repo: string })[],
  replace: boolean,
): TagChange[] {
  const changes: TagChange[] = [];
  for (const image of images) {
    if (image.tag === null) continue;
    const old = manifests.getTag(image.upstream, image.repo, image.tag)?.digest ?? null;
    const change = old === null ? 'added' : old === image.entry.digest ? 'unchanged' : 'replaced';
    changes.push({ image: image.name, change, old, new: image.entry.digest });
  }
  const moves = changes.filter((c) => c.change === 'replaced');
  if (moves.length > 0 && !replace) {
    const list = moves.map((c) => `${c.image} from ${c.old} to ${c.new}`).join(', ');
    throw bundleError(`it moves ${list} (pass --replace, or replace=true, to allow it)`, 'DENIED');
  }
  return changes;
}
