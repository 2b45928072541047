// Three acr-mirror processes in one cluster (backend fs) in front of the real upstream: every blob is downloaded
// from the upstream once across the replicas, sequential or concurrent pulls alike, and a replica killed with -9
// in the middle of the fill it owns does not fail the other replicas' pulls.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ownerOf } from '../../src/cluster/rendezvous.js';
import { expectDownloadedOnce, killOwnerMidFill, pullConcurrently, pullThrough, startReplicas } from './harness/cluster.js';
import type { BuiltImage } from './harness/images.js';
import { expectCacheConsistent } from './harness/mirror-check.js';
import type { MirrorProcess } from './harness/mirror-process.js';
import { startUpstream, type Upstream } from './harness/upstream.js';

const KiB = 1024;
const MiB = 1024 * KiB;

describe('three replicas in one cluster against the real upstream', () => {
  let up: Upstream;
  let images: { sequential: BuiltImage; concurrent: BuiltImage; big: BuiltImage };
  let members: string[];
  let replicas: MirrorProcess[];

  beforeAll(async () => {
    up = await startUpstream();
    const [sequential, concurrent, big] = await Promise.all([
      up.pushImage({ kind: 'oci', repo: 'team/cluster-a', tag: 'v1', layers: [2 * MiB, MiB, 512 * KiB, 256 * KiB, 64 * KiB], seed: 'cluster-sequential' }),
      up.pushImage({ kind: 'docker', repo: 'team/cluster-b', tag: 'v1', layers: [3 * MiB, 2 * MiB, MiB, 512 * KiB, 128 * KiB], seed: 'cluster-concurrent' }),
      up.pushImage({ kind: 'oci', repo: 'team/cluster-c', tag: 'v1', layers: [12 * MiB, 256 * KiB], seed: 'cluster-kill' }),
    ]);
    images = { sequential: sequential!, concurrent: concurrent!, big: big! };
    ({ members, replicas } = await startReplicas(up, 3, { spread: images.sequential.blobs.map((b) => b.digest) }));
  });
  afterAll(async () => {
    await Promise.all((replicas ?? []).map((r) => r.stop()));
    await up?.stop();
  });

  it('a pull through A, then B, then C is byte-identical each time and downloads each blob once', async () => {
    const image = images.sequential;
    up.proxy.reset();
    for (const [i, replica] of replicas.entries()) await pullThrough(up, replica, image, `cluster-sequential-${i}`);
    // every replica served blobs another member owns
    const owners = new Set(image.blobs.map((b) => ownerOf(b.digest, members)));
    expect(owners.size).toBeGreaterThan(1);
    expectDownloadedOnce(up, image);
    for (const replica of replicas) await expectCacheConsistent(replica.dataDir);
  }, 120_000);

  it('three concurrent cold pulls, one per replica, download each blob once', async () => {
    const image = images.concurrent;
    up.proxy.reset();
    await pullConcurrently(up, replicas, image, 'cluster-concurrent');
    expectDownloadedOnce(up, image);
    for (const replica of replicas) await expectCacheConsistent(replica.dataDir);
  }, 120_000);

  it('the owner of a big layer killed with -9 mid-fill: the other replicas\' pulls still succeed', async () => {
    await killOwnerMidFill(up, { members, replicas }, images.big, 'cluster-kill');
  }, 180_000);
});
