import { createHash } from 'node:crypto';

/**
 * The member that owns a digest by rendezvous (highest random weight) hashing: each member scores
 * hash(member + digest) and the highest wins. Every member computes the same owner from the same list, and removing
 * a member moves only the digests it owned (every other member's score for a digest is unchanged).
 */
export function ownerOf(digest: string, members: readonly string[]): string {
  let best: string | undefined;
  let bestScore = -1n;
  for (const member of members) {
    const score = createHash('sha256').update(member).update('\n').update(digest).digest().readBigUInt64BE(0);
    if (score > bestScore || (score === bestScore && member < best!)) {
      best = member;
      bestScore = score;
    }
  }
  if (best === undefined) throw new Error('ownerOf: no members');
  return best;
}
