import type { MissRouting } from '../proxy/miss-routing.js';
import type { UpstreamTarget } from '../proxy/target.js';
import { ownerFirst } from './owner-source.js';
import type { ClusterPeers, ForwardTarget } from './peers.js';

/** Misses of digests another member owns go to that member first (one hop); the rest go to the upstream. */
export function clusterRouting(peers: ClusterPeers): MissRouting {
  return {
    owns: (digest) => peers.owns(digest),
    blobSource: (target, digest, upstream) => (peers.owns(digest) ? upstream : ownerFirst(peers, peers.ownerOf(digest), forwardTarget(target), digest, upstream)),
    manifest: async (target, digest, accept) => {
      // The owner's answer is checked against the digest, which this replica can do for sha256 only.
      if (!digest.startsWith('sha256:') || peers.owns(digest)) return null;
      const answer = await peers.getManifest(peers.ownerOf(digest), forwardTarget(target), digest, accept);
      if (answer) peers.answered('manifest');
      return answer;
    },
  };
}

function forwardTarget(target: UpstreamTarget): ForwardTarget {
  return { upstream: target.client.name, repo: target.repo };
}
