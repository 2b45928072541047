import type { MissRouting } from '../proxy/miss-routing.js';
import type { UpstreamTarget } from '../proxy/target.js';
import { ownerFirst } from './owner-source.js';
import type { ClusterPeers, ForwardTarget } from './peers.js';

/**
 * Misses of digests another member owns go to that member first (one hop), unless it just failed to answer one;
 * the rest go to the upstream. A blob fill whose owner failed it is reported to `tookOver` (see ownerFirst).
 */
export function clusterRouting(peers: ClusterPeers, tookOver: (digest: string) => void): MissRouting {
  return {
    forwards: (digest) => peers.forwardTo(digest) !== null,
    blobSource: (target, digest, upstream) => {
      const owner = peers.forwardTo(digest);
      return owner ? ownerFirst(peers, owner, forwardTarget(target), digest, upstream, tookOver) : upstream;
    },
    manifest: async (target, digest, accept) => {
      const owner = peers.forwardTo(digest);
      // The owner's answer is checked against the digest, which this replica can do for sha256 only.
      if (!digest.startsWith('sha256:') || !owner) return null;
      const answer = await peers.getManifest(owner, forwardTarget(target), digest, accept);
      if (answer) peers.answered('manifest');
      return answer;
    },
  };
}

function forwardTarget(target: UpstreamTarget): ForwardTarget {
  return { upstream: target.client.name, repo: target.repo };
}
