import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { ClusterPeers, OWNER_RETRY_MS } from '../../src/cluster/peers.js';
import { Secret } from '../../src/config/secret.js';
import { Metrics } from '../../src/observability/metrics.js';
import { ownerOf } from '../../src/cluster/rendezvous.js';
import { ADMIN_ENV, finishedJob, startWarm } from '../support/admin.js';
import { FakeUpstream, type FakeImage, makeImage } from '../support/fake-upstream.js';
import { CLUSTER_SECRET, type Replica, startCluster, stopCluster, upstreamBlobBytes } from '../support/cluster.js';

const MiB = 1024 * 1024;
let fake: FakeUpstream;
let replicas: Replica[] = [];

afterEach(async () => {
  await stopCluster(replicas);
  replicas = [];
});

/** The replica that owns digest and another one. */
function roles(digest: string): { owner: Replica; other: Replica } {
  const url = ownerOf(digest, replicas.map((r) => r.url));
  return { owner: replicas.find((r) => r.url === url)!, other: replicas.find((r) => r.url !== url)! };
}

async function pull(r: Replica, repo: string, digest: string): Promise<Buffer> {
  const res = await r.m.request(`/v2/${repo}/blobs/${digest}`);
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

const metric = async (r: Replica, name: string) => {
  const text = await r.m.mirror.metrics.text();
  return text.split('\n').filter((l) => l.startsWith(name)).reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
};

describe('cluster: ownership as each member sees it', () => {
  it('exactly one member owns each digest (as it sees itself), and the others forward its misses to it (forwardTo)', async () => {
    const members = ['http://10.0.0.11:5000', 'http://10.0.0.12:5000', 'http://10.0.0.13:5000'];
    const views = members.map(
      (self) => new ClusterPeers({ self, members, secret: new Secret(CLUSTER_SECRET), forward_timeout: 5000 }, { log: pino({ level: 'silent' }), metrics: new Metrics(), now: Date.now }),
    );
    for (let i = 0; i < 300; i++) {
      const digest = `sha256:${i.toString(16).padStart(64, '0')}`;
      const owners = views.filter((v, i) => v.ownerOf(digest) === members[i]);
      expect(owners).toHaveLength(1);
      for (const v of views) expect(v.forwardTo(digest)).toBe(v === owners[0] ? null : ownerOf(digest, members));
    }
    await Promise.all(views.map((v) => v.close()));
  });
});

describe('cluster: the forwarding endpoint', () => {
  it('is open only with the cluster secret, and serves blobs (Range too) and manifests by digest', async () => {
    fake = new FakeUpstream();
    const img = fake.add(makeImage('team/app', 'v1', [200_000]));
    replicas = await startCluster(fake, 2);
    const [layer, bytes] = [...img.blobs].at(-1)!;
    const url = `${replicas[0]!.url}/_cluster/v1/acr/team/app/blobs/${layer}`;
    for (const authorization of [undefined, 'Bearer wrong-secret-of-any-length', `Basic ${CLUSTER_SECRET}`, `Bearer ${CLUSTER_SECRET}x`]) {
      const res = await fetch(url, { headers: authorization ? { authorization } : {} });
      expect(res.status, authorization).toBe(401);
      expect(await res.text()).not.toContain(CLUSTER_SECRET);
    }
    expect(fake.count({ host: 'oss.test' })).toBe(0);

    const auth = { authorization: `Bearer ${CLUSTER_SECRET}` };
    const full = await fetch(url, { headers: auth });
    expect(full.status).toBe(200);
    expect(Buffer.from(await full.arrayBuffer()).equals(bytes)).toBe(true);
    const part = await fetch(url, { headers: { ...auth, range: 'bytes=1000-' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 1000-${bytes.length - 1}/${bytes.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(bytes.subarray(1000))).toBe(true);

    const manifest = await fetch(`${replicas[0]!.url}/_cluster/v1/acr/team/app/manifests/${img.manifestDigest}`, { headers: auth });
    expect(manifest.status).toBe(200);
    expect(Buffer.from(await manifest.arrayBuffer()).equals(img.manifest)).toBe(true);
    const byTag = await fetch(`${replicas[0]!.url}/_cluster/v1/acr/team/app/manifests/v1`, { headers: auth });
    expect(byTag.status).toBe(404);
    const unknownUpstream = await fetch(`${replicas[0]!.url}/_cluster/v1/other/team/app/blobs/${layer}`, { headers: auth });
    expect(unknownUpstream.status).toBe(404);
    for (const r of replicas) expect(r.logs.join('')).not.toContain(CLUSTER_SECRET);
  });
});

describe('cluster: one hop', () => {
  it('a forwarded miss reaching a member that does not own the digest (member lists that differ) is fetched there, not forwarded again', async () => {
    fake = new FakeUpstream();
    const img = fake.add(makeImage('team/app', 'v1', [100_000]));
    replicas = await startCluster(fake, 2);
    const [layer, bytes] = [...img.blobs].at(-1)!;
    const { owner, other } = roles(layer);
    const res = await fetch(`${other.url}/_cluster/v1/acr/team/app/blobs/${layer}`, { headers: { authorization: `Bearer ${CLUSTER_SECRET}` } });
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
    expect(await metric(other, 'acr_mirror_cluster_forwarded_total')).toBe(0);
    expect(owner.logs.join('')).not.toContain('/_cluster/');
    expect(upstreamBlobBytes(fake, layer, bytes.length)).toBe(bytes.length);
  });
});

describe('cluster: a miss is fetched once, by the owner of its digest', () => {
  it('a blob and its manifest pulled through two replicas come from the upstream once', async () => {
    fake = new FakeUpstream();
    const img = fake.add(makeImage('team/app', 'v1', [3 * MiB]));
    replicas = await startCluster(fake, 2);
    const [layer, bytes] = [...img.blobs].at(-1)!;
    const { owner, other } = roles(layer);

    expect((await pull(other, 'team/app', layer)).equals(bytes)).toBe(true);
    expect((await pull(owner, 'team/app', layer)).equals(bytes)).toBe(true);
    expect(upstreamBlobBytes(fake, layer, bytes.length)).toBe(bytes.length);
    expect(await metric(other, 'acr_mirror_cluster_forwarded_total{kind="blob"}')).toBe(1);
    expect(await metric(owner, 'acr_mirror_cluster_forwarded_total')).toBe(0);

    const manifestOwner = roles(img.manifestDigest);
    for (const r of [manifestOwner.other, manifestOwner.owner]) {
      const res = await r.m.request(`/v2/team/app/manifests/${img.manifestDigest}`);
      expect(res.status).toBe(200);
      expect(Buffer.from(await res.arrayBuffer()).equals(img.manifest)).toBe(true);
    }
    expect(fake.count({ host: 'registry.test', authorized: true, pathIncludes: `/manifests/${img.manifestDigest}` })).toBe(1);
    expect(await metric(manifestOwner.other, 'acr_mirror_cluster_forwarded_total{kind="manifest"}')).toBe(1);
  });

  it('an owner whose cache has no room for the blob relays it to the forwarding member (not dropped as a prefetch would be)', async () => {
    fake = new FakeUpstream();
    const img = fake.add(makeImage('team/app', 'v1', [3 * MiB]));
    replicas = await startCluster(fake, 2, { config: { storage: { max_size: '1MiB' } } });
    const [layer, bytes] = [...img.blobs].at(-1)!;
    const { other } = roles(layer);

    expect((await pull(other, 'team/app', layer)).equals(bytes)).toBe(true);
    expect(upstreamBlobBytes(fake, layer, bytes.length)).toBe(bytes.length);
    expect(await metric(other, 'acr_mirror_cluster_forwarded_total{kind="blob"}')).toBe(1);
    expect(await metric(other, 'acr_mirror_cluster_owner_unreachable_total')).toBe(0);
  });

  it('concurrent pulls through three replicas share the owner\'s one download', async () => {
    fake = new FakeUpstream();
    const img = fake.add(makeImage('team/app', 'v1', [4 * MiB, 2 * MiB, 1 * MiB]));
    replicas = await startCluster(fake, 3);
    const layers = [...img.blobs];
    const pulled = await Promise.all(replicas.flatMap((r) => layers.map(([digest]) => pull(r, 'team/app', digest))));
    pulled.forEach((b, i) => expect(b.equals(layers[i % layers.length]![1])).toBe(true));
    for (const [digest, bytes] of layers) expect(upstreamBlobBytes(fake, digest, bytes.length)).toBe(bytes.length);
  });
});

describe('cluster: prefetch and warm jobs on a replica', () => {
  /** Two replicas, and an image with layers owned by each (the members' ports are the OS's choice). */
  async function twoOwners(prefetch: boolean): Promise<FakeImage> {
    fake = new FakeUpstream();
    replicas = await startCluster(fake, 2, { config: { cache: { prefetch, orphan_fill_grace: '1s' } }, env: ADMIN_ENV });
    const sizes = [MiB, 512 * 1024, 256 * 1024];
    let img = makeImage('team/app', 'v1', sizes);
    for (let seed = 2; new Set([...img.blobs.keys()].map((d) => roles(d).owner)).size < 2; seed++) img = makeImage('team/app', 'v1', sizes, seed);
    return fake.add(img);
  }

  /** Each layer was downloaded once, and is cached on replicas[0] (which fetched the image) and on its owner. */
  async function expectFetchedThroughOwners(img: FakeImage): Promise<void> {
    for (const r of replicas) await r.m.mirror.fills.settled();
    for (const [digest, bytes] of img.blobs) {
      expect(upstreamBlobBytes(fake, digest, bytes.length), digest).toBe(bytes.length);
      for (const r of new Set([replicas[0]!, roles(digest).owner])) {
        const cached = await r.m.request(`/v2/team/app/blobs/${digest}`);
        expect(cached.headers.get('x-cache'), `${digest} on ${r.url}`).toBe('hit');
        expect(Buffer.from(await cached.arrayBuffer()).equals(bytes)).toBe(true);
      }
    }
  }

  it('prefetch fetches the layers another member owns through that owner, which caches them', async () => {
    const img = await twoOwners(true);
    expect((await replicas[0]!.m.request('/v2/team/app/manifests/v1')).status).toBe(200);
    await replicas[0]!.m.mirror.fills.settled();
    await expectFetchedThroughOwners(img);
  });

  it('a warm job does the same', async () => {
    const img = await twoOwners(false);
    const job = await finishedJob(replicas[0]!.m, (await startWarm(replicas[0]!.m, { images: ['team/app:v1'] })).id);
    expect(job.state).toBe('done');
    await expectFetchedThroughOwners(img);
  });
});

describe('cluster: an owner that does not answer', () => {
  it('is down: the other replica fetches the blob itself', async () => {
    fake = new FakeUpstream();
    const img = fake.add(makeImage('team/app', 'v1', [MiB]));
    replicas = await startCluster(fake, 2);
    const [layer, bytes] = [...img.blobs].at(-1)!;
    const { owner, other } = roles(layer);
    owner.stop();
    expect((await pull(other, 'team/app', layer)).equals(bytes)).toBe(true);
    expect(await metric(other, 'acr_mirror_cluster_owner_unreachable_total{kind="blob",reason="network"}')).toBe(1);
    expect(other.logs.join('')).toContain('cluster owner did not answer a forwarded miss');
  });

  it('that failed is not asked for OWNER_RETRY_MS: misses of its digests go to the upstream at once, then it is asked again', async () => {
    fake = new FakeUpstream();
    let clock = Date.now();
    replicas = await startCluster(fake, 2, { now: () => clock });
    const [owner, other] = replicas as [Replica, Replica];
    const sizes = [10_000, 20_000, 30_000, 40_000, 50_000, 60_000];
    let img = makeImage('team/app', 'v1', sizes);
    const owned = () => [...img.blobs].filter(([digest]) => roles(digest).owner === owner);
    for (let seed = 2; owned().length < 3; seed++) img = makeImage('team/app', 'v1', sizes, seed);
    fake.add(img);
    const [first, second, third] = owned() as [[string, Buffer], [string, Buffer], [string, Buffer]];
    owner.stop();
    const unreachable = () => metric(other, 'acr_mirror_cluster_owner_unreachable_total');

    expect((await pull(other, 'team/app', first[0])).equals(first[1])).toBe(true);
    expect(await unreachable()).toBe(1);
    expect((await pull(other, 'team/app', second[0])).equals(second[1])).toBe(true);
    expect(await unreachable()).toBe(1);
    clock += OWNER_RETRY_MS;
    expect((await pull(other, 'team/app', third[0])).equals(third[1])).toBe(true);
    expect(await unreachable()).toBe(2);
  });

  it('answers 404: not taken as the upstream\'s word (an owner on an older version answers that too), the other replica asks the upstream', async () => {
    fake = new FakeUpstream();
    fake.add(makeImage('team/app', 'v1', [1000]));
    replicas = await startCluster(fake, 2);
    const missing = `sha256:${'ab'.repeat(32)}`;
    const { owner, other } = roles(missing);
    const res = await other.m.request(`/v2/team/app/blobs/${missing}`);
    expect(res.status).toBe(404);
    expect(fake.count({ host: 'registry.test', authorized: true, pathIncludes: `/blobs/${missing}` })).toBe(2);
    expect(await metric(other, 'acr_mirror_cluster_owner_unreachable_total{kind="blob",reason="not_found"}')).toBe(1);
    expect(other.logs.join('')).not.toContain('cluster owner did not answer');
    expect(owner.logs.join('')).toContain(missing);
  });

  it('is down: the other replica fetches a manifest by digest itself', async () => {
    fake = new FakeUpstream();
    const img = fake.add(makeImage('team/app', 'v1', [1000]));
    replicas = await startCluster(fake, 2);
    const { owner, other } = roles(img.manifestDigest);
    owner.stop();
    const res = await other.m.request(`/v2/team/app/manifests/${img.manifestDigest}`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('docker-content-digest')).toBe(img.manifestDigest);
    expect(await metric(other, 'acr_mirror_cluster_owner_unreachable_total{kind="manifest",reason="network"}')).toBe(1);
    const again = await other.m.request(`/v2/team/app/manifests/${img.manifestDigest}`);
    expect(again.headers.get('x-cache')).toBe('hit');
    expect(Buffer.from(await again.arrayBuffer()).equals(img.manifest)).toBe(true);
  });

  it('answers no headers within forward_timeout: the other replica fetches the blob itself', async () => {
    fake = new FakeUpstream();
    const img = fake.add(makeImage('team/app', 'v1', [MiB]));
    replicas = await startCluster(fake, 2, { cluster: { forward_timeout: '200ms' } });
    const [layer, bytes] = [...img.blobs].at(-1)!;
    const { owner, other } = roles(layer);
    owner.setListener(() => () => {}); // accepts, never answers
    expect((await pull(other, 'team/app', layer)).equals(bytes)).toBe(true);
    expect(await metric(other, 'acr_mirror_cluster_owner_unreachable_total{kind="blob",reason="timeout"}')).toBe(1);
  });

  it('dies in the middle of a blob: the other replica resumes from the upstream with the exact bytes', async () => {
    fake = new FakeUpstream();
    const img = fake.add(makeImage('team/app', 'v1', [4 * MiB]));
    replicas = await startCluster(fake, 2);
    const [layer, bytes] = [...img.blobs].at(-1)!;
    const { owner, other } = roles(layer);
    owner.setListener((serve) => (req, res) => {
      let sent = 0;
      const write = res.write.bind(res) as (chunk: Buffer, ...rest: unknown[]) => boolean;
      res.write = ((chunk: Buffer, ...rest: unknown[]) => {
        if (res.socket?.destroyed || sent >= MiB) return true;
        sent += chunk.length;
        const ok = write(chunk, ...rest);
        if (sent >= MiB) {
          res.socket?.end();
          owner.stop();
        }
        return ok;
      }) as typeof res.write;
      serve(req, res);
    });
    expect((await pull(other, 'team/app', layer)).equals(bytes)).toBe(true);
    const resumed = fake.calls.filter((c) => c.host === 'oss.test' && c.path.startsWith(`/blobs/${layer}`) && /^bytes=[1-9]\d*-$/.test(c.range ?? ''));
    expect(resumed.length).toBe(1);
    expect(Number(/^bytes=(\d+)-/.exec(resumed[0]!.range!)![1])).toBeGreaterThanOrEqual(MiB);
    expect(await metric(other, 'acr_mirror_cluster_owner_unreachable_total{kind="blob",reason="network"}')).toBe(1);
  });
});
