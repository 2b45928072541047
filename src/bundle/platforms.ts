import type { ManifestContent } from '../oci/manifest.js';
import { formatPlatform } from '../oci/platform.js';

/**
 * The platforms of a bundled image: those the bundle holds, and those its index lists that the bundle leaves out
 * (a platform-filtered export: a client on such a platform finds the index but not its image). Both are empty
 * for a single-platform manifest.
 */
export interface HeldPlatforms {
  platforms: string[];
  left: string[];
}

/** The platforms of an image's index whose manifests `holds` says are in the bundle, and those it says are not. */
export function heldPlatforms(content: ManifestContent, holds: (digest: string) => boolean): HeldPlatforms {
  const held: HeldPlatforms = { platforms: [], left: [] };
  if (content.kind !== 'index') return held;
  for (const entry of content.manifests) {
    // unknown/unknown entries are attestations (build provenance), not platforms
    if (!entry.platform || entry.platform.os === 'unknown') continue;
    (holds(entry.digest) ? held.platforms : held.left).push(formatPlatform(entry.platform));
  }
  return held;
}

/** Every platform any of the images holds, each once, sorted. */
export function platformsOf(images: HeldPlatforms[]): string[] {
  return [...new Set(images.flatMap((i) => i.platforms))].sort();
}

/**
 * The images an export leaves incomplete, as the X-Bundle-Incomplete header carries them:
 * `team/app:1.2=linux/arm64,linux/s390x; library/nginx:1.25=linux/arm64` (names and platforms hold no = , ; or space).
 */
export function incompleteHeader(images: (HeldPlatforms & { name: string })[]): string {
  return images
    .filter((i) => i.left.length > 0)
    .map((i) => `${i.name}=${i.left.join(',')}`)
    .join('; ');
}

export function parseIncompleteHeader(value: string | null): { name: string; left: string[] }[] {
  return (value ?? '')
    .split(';')
    .map((part) => part.trim().split('='))
    .filter(([name, left]) => name && left)
    .map(([name, left]) => ({ name: name!, left: left!.split(',') }));
}
