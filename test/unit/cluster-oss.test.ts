// A cluster whose replicas share one bucket (the OSS test server): the blobs a replica fetches from the upstream
// itself end up in the bucket, also when it had left that to an owner that then did not answer.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ownerOf } from '../../src/cluster/rendezvous.js';
import { type Replica, startCluster, stopCluster, upstreamBlobBytes } from '../support/cluster.js';
import { FakeUpstream, makeImage } from '../support/fake-upstream.js';
import { OssTestServer } from '../support/oss-server.js';

const BUCKET = 'cluster-blobs';
const MiB = 1024 * 1024;
let oss: OssTestServer;
let fake: FakeUpstream;
let replicas: Replica[] = [];

beforeEach(async () => {
  oss = await OssTestServer.start({ buckets: [BUCKET], credentials: { 'cluster-ak': 'cluster-secret' } });
  fake = new FakeUpstream();
});
afterEach(async () => {
  await stopCluster(replicas);
  replicas = [];
  await oss.close();
});

async function startOnBucket(count: number): Promise<Replica[]> {
  return startCluster(fake, count, {
    config: { storage: { dir: 'data', backend: 'oss', oss: { bucket: BUCKET, endpoint: oss.endpoint, part_size: '100KiB' } } },
    env: { ALIBABA_CLOUD_ACCESS_KEY_ID: 'cluster-ak', ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'cluster-secret' },
  });
}

const keyOf = (digest: string) => `blobs/sha256/${digest.slice('sha256:'.length)}`;

describe('cluster on one bucket', () => {
  it('the owner answers: its fill puts the blob in the bucket, the forwarding replica\'s does not upload it again', async () => {
    const [layer, bytes] = [...fake.add(makeImage('team/app', 'v1', [MiB])).blobs].at(-1)!;
    replicas = await startOnBucket(2);
    const other = replicas.find((r) => r.url !== ownerOf(layer, replicas.map((x) => x.url)))!;
    const res = await other.m.request(`/v2/team/app/blobs/${layer}`);
    expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
    for (const r of replicas) await r.m.mirror.fills.settled();
    expect(oss.objectBytes(keyOf(layer), BUCKET)?.equals(bytes)).toBe(true);
    expect(oss.faults.count('InitiateMultipartUpload')).toBe(1);
    expect(upstreamBlobBytes(fake, layer, bytes.length)).toBe(bytes.length);
  });

  it('the owner is down: the replica that fetches the blob itself puts it in the bucket', async () => {
    const [layer, bytes] = [...fake.add(makeImage('team/app', 'v1', [MiB])).blobs].at(-1)!;
    replicas = await startOnBucket(2);
    const owner = replicas.find((r) => r.url === ownerOf(layer, replicas.map((x) => x.url)))!;
    const other = replicas.find((r) => r !== owner)!;
    owner.stop();
    const res = await other.m.request(`/v2/team/app/blobs/${layer}`);
    expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
    await other.m.mirror.fills.settled();
    expect(other.logs.join('')).toContain('cluster owner did not answer a forwarded miss');
    expect(oss.objectBytes(keyOf(layer), BUCKET)?.equals(bytes)).toBe(true);
    expect(oss.openUploads(BUCKET)).toEqual([]);
  });
});
