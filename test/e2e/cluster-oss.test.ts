// Three acr-mirror processes in one cluster sharing one OSS bucket (backend oss, the in-process OSS test server),
// in front of the real upstream: each blob is downloaded from the upstream once across the replicas and committed
// to the bucket once; a replica killed with -9 mid-fill leaves no wrong object and no completed upload behind; a
// fourth replica with an empty disk serves the cached images from the bucket alone while ACR is down.
// Wrong OSS credentials at start-up (exit 2, one line naming the bucket and the reason) are covered against the
// built CLI by test/unit/oss-startup.test.ts.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ownerOf } from '../../src/cluster/rendezvous.js';
import { OssTestServer } from '../support/oss-server.js';
import { expectDownloadedOnce, killOwnerMidFill, pullConcurrently, pullThrough, startReplicas } from './harness/cluster.js';
import type { BlobFile, BuiltImage } from './harness/images.js';
import { expectCacheConsistent, mirrorConfig } from './harness/mirror-check.js';
import { type MirrorProcess, startMirror } from './harness/mirror-process.js';
import { startUpstream, type Upstream } from './harness/upstream.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const BUCKET = 'acr-cache';
const PREFIX = 'acr-mirror/';
const OSS_KEYS = { ALIBABA_CLOUD_ACCESS_KEY_ID: 'e2e-ak', ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'e2e-secret' };

const blobKey = (digest: string) => `${PREFIX}blobs/sha256/${digest.slice('sha256:'.length)}`;

describe('three replicas in one cluster on one OSS bucket against the real upstream', () => {
  let up: Upstream;
  let oss: OssTestServer;
  let images: { sequential: BuiltImage; concurrent: BuiltImage; big: BuiltImage };
  let members: string[];
  let replicas: MirrorProcess[];
  let fourth: MirrorProcess | undefined;
  let storage: string;

  beforeAll(async () => {
    [up, oss] = await Promise.all([startUpstream(), OssTestServer.start({ buckets: [BUCKET], credentials: { 'e2e-ak': 'e2e-secret' } })]);
    const [sequential, concurrent, big] = await Promise.all([
      up.pushImage({ kind: 'oci', repo: 'team/oss-a', tag: 'v1', layers: [2 * MiB, MiB, 512 * KiB, 256 * KiB, 64 * KiB], seed: 'oss-cluster-sequential' }),
      // the image: 5 layers of 40 MiB, 200 MiB
      up.pushImage({ kind: 'docker', repo: 'team/oss-b', tag: 'v1', layers: Array(5).fill(40 * MiB), seed: 'oss-cluster-concurrent' }),
      up.pushImage({ kind: 'oci', repo: 'team/oss-c', tag: 'v1', layers: [12 * MiB, 256 * KiB], seed: 'oss-cluster-kill' }),
    ]);
    images = { sequential: sequential!, concurrent: concurrent!, big: big! };
    // small parts, so that the layers are multipart uploads of several parts
    storage = `backend = "oss"\n[storage.oss]\nbucket = "${BUCKET}"\nendpoint = "${oss.endpoint}"\nprefix = "${PREFIX}"\npart_size = "1MiB"\n`;
    ({ members, replicas } = await startReplicas(up, 3, { storage, env: OSS_KEYS, spread: images.sequential.blobs.map((b) => b.digest) }));
  });
  afterAll(async () => {
    await Promise.all([...(replicas ?? []), ...(fourth ? [fourth] : [])].map((r) => r.stop()));
    await Promise.all([up?.stop(), oss?.close()]);
  });

  const commitsOf = (digest: string) => oss.commits(BUCKET).filter((c) => c.key === blobKey(digest));

  /** Every object under blobs/ in the bucket has the bytes its key names. */
  const expectBucketBlobsIntact = () => {
    const keys = oss.keys(BUCKET).filter((k) => k.startsWith(`${PREFIX}blobs/`));
    const wrong = keys.filter((k) => `${PREFIX}blobs/sha256/${createHash('sha256').update(oss.objectBytes(k, BUCKET)!).digest('hex')}` !== k);
    expect(wrong).toEqual([]);
    return keys;
  };

  it('a pull through A, then B, then C is byte-identical each time; B and C download no blob byte from the upstream', async () => {
    const image = images.sequential;
    up.proxy.reset();
    for (const [i, replica] of replicas.entries()) {
      await pullThrough(up, replica, image, `oss-sequential-${i}`);
      // A downloads the image once; B and C not a byte more
      if (i === 0) expectDownloadedOnce(up, image);
    }
    expect(new Set(image.blobs.map((b) => ownerOf(b.digest, members))).size).toBeGreaterThan(1);
    expectDownloadedOnce(up, image);
    for (const blob of image.blobs) expect(commitsOf(blob.digest), blob.digest).toHaveLength(1);
    expectBucketBlobsIntact();
    for (const replica of replicas) await expectCacheConsistent(replica.dataDir);
  }, 120_000);

  it('three concurrent cold pulls, one per replica: the upstream sends 1.00x the image, each blob is committed to the bucket once', async () => {
    const image = images.concurrent;
    up.proxy.reset();
    await pullConcurrently(up, replicas, image, 'oss-concurrent');
    expectDownloadedOnce(up, image);
    for (const blob of image.blobs) expect(commitsOf(blob.digest), blob.digest).toHaveLength(1);
    const keys = expectBucketBlobsIntact();
    expect(keys).toEqual(expect.arrayContaining(image.blobs.map((b) => blobKey(b.digest))));
    expect(oss.openUploads(BUCKET).filter((u) => image.blobs.some((b) => u.key === blobKey(b.digest)))).toEqual([]);
    for (const replica of replicas) await expectCacheConsistent(replica.dataDir);
  }, 120_000);

  it('the owner of a big layer killed with -9 mid-fill: the others\' pulls succeed, its upload is never completed, the bucket holds only true blobs', async () => {
    const image = images.big;
    // the owner's multipart upload of the layer, once it has parts
    const ownersUpload = (layer: BlobFile) => {
      const uploads = oss.openUploads(BUCKET).filter((u) => u.key === blobKey(layer.digest));
      expect(uploads).toHaveLength(1);
      expect(uploads[0]!.parts.length).toBeGreaterThan(0);
      return uploads[0]!.uploadId;
    };
    const { layer, filling: uploadId } = await killOwnerMidFill(up, { members, replicas }, image, 'oss-kill', ownersUpload);
    const commits = commitsOf(layer.digest);
    expect(commits).toHaveLength(1);
    expect(commits[0]!.uploadId).not.toBe(uploadId);
    // left open by the dead process: aborted at a start-up a day later, or by the bucket's lifecycle rule
    expect(oss.openUploads(BUCKET).map((u) => u.uploadId)).toContain(uploadId);
    expect(expectBucketBlobsIntact()).toEqual(expect.arrayContaining(image.blobs.map((b) => blobKey(b.digest))));
  }, 180_000);

  it('with ACR down, a fourth replica started with an empty disk on the same bucket serves the cached images', async () => {
    await up.registry.stop();
    fourth = await startMirror({ config: mirrorConfig(up, '', '[cache]\nprefetch = false\n', storage), env: { ACR_PASSWORD: up.credentials.password, ...OSS_KEYS } });
    for (const [name, image] of Object.entries(images)) await pullThrough(up, fourth, image, `oss-fourth-${name}`);
    await expectCacheConsistent(fourth.dataDir);
  }, 120_000);
});
