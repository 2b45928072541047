import { join } from 'node:path';
import { expect } from 'vitest';
import { ownerOf } from '../../../src/cluster/rendezvous.js';
import { eventually } from '../../support/eventually.js';
import type { BlobFile, BuiltImage } from './images.js';
import { expectCacheConsistent, expectSameImage, mirrorConfig } from './mirror-check.js';
import { type MirrorProcess, startMirror } from './mirror-process.js';
import { freePort } from './ports.js';
import type { Upstream } from './upstream.js';

export const CLUSTER_SECRET = 'b7e04c19f2a84d3e96c15a0f7d2e8b43';
const MiB = 1024 * 1024;

export interface ReplicaSet {
  members: string[];
  replicas: MirrorProcess[];
}

/**
 * `count` acr-mirror processes in one cluster in front of `up` (prefetch off, so the upstream's bytes are the pulls'
 * own); `storage` TOML lines go into [storage] (tables under it, like [storage.oss], included). The members' ports
 * are chosen so that the digests in `spread` are not all owned by one member.
 */
export async function startReplicas(
  up: Upstream,
  count: number,
  opts: { storage?: string; env?: Record<string, string>; spread?: string[] } = {},
): Promise<ReplicaSet> {
  const { ports, members } = await memberUrls(count, opts.spread ?? []);
  const cluster = `[cluster]\nmembers = ${JSON.stringify(members)}\nsecret_env = "CLUSTER_SECRET"\n`;
  const started = await Promise.allSettled(
    ports.map((port, i) =>
      startMirror({
        config: mirrorConfig(up, '', `[cache]\nprefetch = false\n${cluster}self = "${members[i]}"\n`, opts.storage),
        env: { ACR_PASSWORD: up.credentials.password, CLUSTER_SECRET, ...opts.env },
        listen: `127.0.0.1:${port}`,
      }),
    ),
  );
  const replicas = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) {
    await Promise.all(replicas.map((r) => r.stop()));
    throw failed.reason;
  }
  return { members, replicas };
}

/** Member URLs on free loopback ports, chosen again while the digests to spread would have one owner. */
async function memberUrls(count: number, spread: string[]): Promise<{ ports: number[]; members: string[] }> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const ports = await Promise.all(Array.from({ length: count }, () => freePort()));
    const members = ports.map((p) => `http://127.0.0.1:${p}`);
    if (new Set(spread).size < 2 || new Set(spread.map((d) => ownerOf(d, members))).size > 1) return { ports, members };
  }
  throw new Error(`no ${count} free ports spread ${spread.length} digests over more than one owner`);
}

/** skopeo copy --all of the image through a mirror into the dir: layout `label` in up.dir: it succeeds, byte-identical. */
export async function pullThrough(up: Upstream, mirror: MirrorProcess, image: BuiltImage, label: string): Promise<void> {
  const out = join(up.dir, label);
  const r = await up.skopeo(['copy', '--all', '--src-tls-verify=false', `docker://${mirror.host}/${image.repo}:${image.tag}`, `dir:${out}`]);
  expect(r.code, `${label}: ${r.stderr}`).toBe(0);
  await expectSameImage(out, image);
}

export const imageBytes = (image: BuiltImage) => image.blobs.reduce((sum, b) => sum + b.size, 0);

/** Body bytes the upstream's storage (its OSS front) sent for one blob since the proxy's last reset. */
export const upstreamBlobBytes = (up: Upstream, digest: string) =>
  up.proxy.filter({ front: 'oss', method: 'GET', blob: digest }).reduce((n, d) => n + d.bytes, 0);

/** Body bytes the upstream's storage sent for the image's blobs since the proxy's last reset. */
export const upstreamImageBytes = (up: Upstream, image: BuiltImage) => image.blobs.reduce((sum, b) => sum + upstreamBlobBytes(up, b.digest), 0);

/** The upstream's storage sent the image's blobs exactly once since the proxy's last reset (1.00x, to the byte). */
export function expectDownloadedOnce(up: Upstream, image: BuiltImage): void {
  expect((upstreamImageBytes(up, image) / imageBytes(image)).toFixed(2)).toBe('1.00');
  expect(upstreamImageBytes(up, image)).toBe(imageBytes(image));
}

/** Pulls the image through every mirror at once: each pull succeeds and is byte-identical. */
export async function pullConcurrently(up: Upstream, mirrors: MirrorProcess[], image: BuiltImage, label: string): Promise<void> {
  await Promise.all(mirrors.map((mirror, i) => pullThrough(up, mirror, image, `${label}-${i}`)));
}

/**
 * Pulls the image through every replica but the owner of its biggest layer, with the upstream's storage slowed
 * to 1 MiB/s per request (so the owner's fill is still running); once the owner has downloaded 2 MiB of that layer
 * (and `filling(layer)` returns instead of throwing) kills it with -9 and removes it from set.replicas. The
 * survivors' pulls must succeed, byte-identical, with the owner logged as not answering and their caches consistent.
 */
export async function killOwnerMidFill<T>(
  up: Upstream,
  set: ReplicaSet,
  image: BuiltImage,
  label: string,
  filling: (layer: BlobFile) => T = () => undefined as T,
): Promise<{ layer: BlobFile; survivors: MirrorProcess[]; filling: T }> {
  const layer = image.blobs.reduce((a, b) => (b.size > a.size ? b : a));
  expect(layer.size).toBeGreaterThan(8 * MiB);
  const ownerIndex = set.members.indexOf(ownerOf(layer.digest, set.members));
  const owner = set.replicas[ownerIndex]!;
  const survivors = set.replicas.filter((_, i) => i !== ownerIndex);
  up.proxy.reset();
  up.proxy.faults.add({ front: 'oss', method: 'GET', path: /\/data$/, kind: 'throttle', bytesPerSecond: MiB, times: Infinity });
  try {
    const pulls = pullConcurrently(up, survivors, image, label);
    let seen!: T;
    await eventually(
      () => {
        expect(upstreamBlobBytes(up, layer.digest)).toBeGreaterThan(2 * MiB);
        seen = filling(layer);
      },
      { timeoutMs: 30_000, message: 'the owner downloading the big layer' },
    );
    expect(up.proxy.filter({ front: 'oss', method: 'GET', blob: layer.digest }).every((d) => !d.completed)).toBe(true);
    await owner.kill();
    set.replicas.splice(ownerIndex, 1);
    await pulls;
    for (const replica of survivors) {
      expect(replica.logs()).toContain('cluster owner did not answer a forwarded miss');
      await expectCacheConsistent(replica.dataDir);
    }
    return { layer, survivors, filling: seen };
  } finally {
    up.proxy.faults.clear();
  }
}
