import type { BlobSource } from '../cache/blob-download.js';
import type { ClusterPeers, ForwardTarget } from './peers.js';

/**
 * A non-owner's source for a blob miss: the owner (one stream; the owner segments towards the upstream), then the
 * upstream. Once the owner fails to answer a range (refused, timeout, error status) the rest of the fill, resumes
 * included, comes from the upstream, and `tookOver` is told (the fill now shares the blob as the owner would
 * have); a transfer from the owner that breaks is resumed from the owner first.
 * Only bytes from the upstream are reported to the upstream's byte count.
 */
export function ownerFirst(peers: ClusterPeers, owner: string, to: ForwardTarget, digest: string, upstream: BlobSource, tookOver: (digest: string) => void): BlobSource {
  let from: 'owner' | 'upstream' = 'owner';
  return {
    label: `${upstream.label} via ${owner}`,
    onBytes: (n) => {
      if (from === 'upstream') upstream.onBytes?.(n);
    },
    open: async (range, signal) => {
      const answer = from === 'owner' ? await peers.openBlob(owner, to, digest, range, signal) : null;
      if (answer) {
        if (range.start === 0) peers.answered('blob');
        return answer;
      }
      if (from === 'owner') tookOver(digest);
      from = 'upstream';
      return upstream.open(range, signal);
    },
  };
}
