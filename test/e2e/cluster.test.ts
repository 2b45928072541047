// Three acr-mirror processes in one cluster (backend fs) in front of the real upstream: every blob is downloaded
// from the upstream once across the replicas, sequential or concurrent pulls alike, and a replica killed with -9
// in the middle of the fill it owns does not fail the other replicas' pulls.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ownerOf } from '../../src/cluster/rendezvous.js';
import { eventually } from '../support/eventually.js';
import type { BuiltImage } from './harness/images.js';
import { expectCacheConsistent, expectSameImage, mirrorConfig } from './harness/mirror-check.js';
import { type MirrorProcess, startMirror } from './harness/mirror-process.js';
import { freePort } from './harness/ports.js';
import { startUpstream, type Upstream } from './harness/upstream.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const SECRET = 'b7e04c19f2a84d3e96c15a0f7d2e8b43';

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
    const ports = await Promise.all([freePort(), freePort(), freePort()]);
    members = ports.map((p) => `http://127.0.0.1:${p}`);
    const cluster = `[cluster]\nmembers = ${JSON.stringify(members)}\nsecret_env = "CLUSTER_SECRET"\n`;
    replicas = await Promise.all(
      ports.map((port, i) =>
        startMirror({
          config: mirrorConfig(up, '', `[cache]\nprefetch = false\n${cluster}self = "${members[i]}"\n`),
          env: { ACR_PASSWORD: up.credentials.password, CLUSTER_SECRET: SECRET },
          listen: `127.0.0.1:${port}`,
        }),
      ),
    );
  });
  afterAll(async () => {
    await Promise.all((replicas ?? []).map((r) => r.stop()));
    await up?.stop();
  });

  const copy = (replica: MirrorProcess, image: BuiltImage, out: string) =>
    up.skopeo(['copy', '--all', '--src-tls-verify=false', `docker://${replica.host}/${image.repo}:${image.tag}`, `dir:${out}`]);
  const imageBytes = (image: BuiltImage) => image.blobs.reduce((sum, b) => sum + b.size, 0);
  const ossBytes = (image: BuiltImage) =>
    image.blobs.reduce((sum, b) => sum + up.proxy.filter({ front: 'oss', method: 'GET', blob: b.digest }).reduce((n, d) => n + d.bytes, 0), 0);

  it('a pull through A, then B, then C is byte-identical each time and downloads each blob once', async () => {
    const image = images.sequential;
    up.proxy.reset();
    for (const [i, replica] of replicas.entries()) {
      const out = join(up.dir, `cluster-sequential-${i}`);
      const r = await copy(replica, image, out);
      expect(r.code, r.stderr).toBe(0);
      await expectSameImage(out, image);
    }
    // every replica served blobs another member owns
    const owners = new Set(image.blobs.map((b) => ownerOf(b.digest, members)));
    expect(owners.size).toBeGreaterThan(1);
    expect((ossBytes(image) / imageBytes(image)).toFixed(2)).toBe('1.00');
    expect(ossBytes(image)).toBe(imageBytes(image));
    for (const replica of replicas) await expectCacheConsistent(replica.dataDir);
  }, 120_000);

  it('three concurrent cold pulls, one per replica, download each blob once', async () => {
    const image = images.concurrent;
    up.proxy.reset();
    const results = await Promise.all(replicas.map((replica, i) => copy(replica, image, join(up.dir, `cluster-concurrent-${i}`))));
    for (const [i, r] of results.entries()) {
      expect(r.code, r.stderr).toBe(0);
      await expectSameImage(join(up.dir, `cluster-concurrent-${i}`), image);
    }
    expect((ossBytes(image) / imageBytes(image)).toFixed(2)).toBe('1.00');
    expect(ossBytes(image)).toBe(imageBytes(image));
    for (const replica of replicas) await expectCacheConsistent(replica.dataDir);
  }, 120_000);

  it('the owner of a big layer killed with -9 mid-fill: the other replicas\' pulls still succeed', async () => {
    const image = images.big;
    const layer = image.blobs.reduce((a, b) => (b.size > a.size ? b : a));
    expect(layer.size).toBeGreaterThan(8 * MiB);
    const ownerIndex = members.indexOf(ownerOf(layer.digest, members));
    const owner = replicas[ownerIndex]!;
    const others = replicas.filter((_, i) => i !== ownerIndex);
    up.proxy.reset();
    // slow OSS (each request at 1 MiB/s) keeps the owner's fill in flight
    up.proxy.faults.add({ front: 'oss', method: 'GET', path: /\/data$/, kind: 'throttle', bytesPerSecond: MiB, times: Infinity });
    try {
      const pulls = others.map((replica, i) => copy(replica, image, join(up.dir, `cluster-kill-${i}`)));
      await eventually(
        () => expect(up.proxy.filter({ front: 'oss', method: 'GET', blob: layer.digest }).reduce((n, d) => n + d.bytes, 0)).toBeGreaterThan(2 * MiB),
        { timeoutMs: 30_000, message: 'the owner downloading the big layer' },
      );
      expect(up.proxy.filter({ front: 'oss', method: 'GET', blob: layer.digest }).every((d) => !d.completed)).toBe(true);
      await owner.kill();
      replicas.splice(ownerIndex, 1);
      const results = await Promise.all(pulls);
      for (const [i, r] of results.entries()) {
        expect(r.code, r.stderr).toBe(0);
        await expectSameImage(join(up.dir, `cluster-kill-${i}`), image);
      }
      for (const replica of others) {
        expect(replica.logs()).toContain('cluster owner did not answer a forwarded miss');
        await expectCacheConsistent(replica.dataDir);
      }
    } finally {
      up.proxy.faults.clear();
    }
  }, 180_000);
});
