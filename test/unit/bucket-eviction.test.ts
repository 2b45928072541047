import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BucketEviction } from '../../src/cache/bucket-eviction.js';
import { BucketLease } from '../../src/cache/bucket-lease.js';
import { ossClient } from '../../src/cache/oss-client.js';
import { OssObjects } from '../../src/cache/oss-objects.js';
import { eventually } from '../support/eventually.js';
import { FakeUpstream, makeImage, randomBlob, sha256 } from '../support/fake-upstream.js';
import { startTestMirror } from '../support/mirror.js';
import { OssTestServer } from '../support/oss-server.js';

const BUCKET = 'shared-blobs';
const PREFIX = 'mirror/';
const LEASES = `${PREFIX}leases/evictor/`;
const TTL = 60_000;
const MARGIN = 10_000;
const KiB = 1024;

let oss: OssTestServer;
let objects: OssObjects;
let clock: number;
beforeEach(async () => {
  oss = await OssTestServer.start({ buckets: [BUCKET], credentials: { ak: 'secret' } });
  objects = new OssObjects(ossClient({ bucket: BUCKET, endpoint: oss.cnameEndpoint, cname: true, accessKeyId: 'ak', accessKeySecret: 'secret', timeoutMs: 10_000 }), BUCKET);
  clock = 1_000_000;
});
afterEach(() => oss.close());

const leaseOf = (holder: string) => new BucketLease({ objects, prefix: PREFIX, name: 'evictor', holder, now: () => clock, ttlMs: TTL, skewMarginMs: MARGIN });
const leaseObjects = () => oss.keys().filter((k) => k.startsWith(LEASES));
const holderOf = (key: string) => (JSON.parse(oss.objectBytes(key)!.toString('utf8')) as { holder: string }).holder;
const blobKeys = () => oss.keys().filter((k) => k.startsWith(`${PREFIX}blobs/`));

/** Blobs of `size` put 10 s apart by the server's clock (their LastModified), oldest first; their keys. */
async function seedBlobs(count: number, size: number): Promise<string[]> {
  const keys: string[] = [];
  const start = Date.now() - 10 * 60_000; // within the server's allowed clock skew
  for (let i = 0; i < count; i++) {
    const blob = randomBlob(size, 100 + i);
    oss.now = () => start + i * 10_000;
    const key = `${PREFIX}blobs/sha256/${sha256(blob).slice(7)}`;
    await objects.create(key, blob);
    keys.push(key);
  }
  oss.now = () => Date.now();
  return keys;
}

function evictionOf(lease: BucketLease, maxBytes: number, lastUse: (digest: string) => number | undefined = () => undefined) {
  return new BucketEviction({ objects, lease, prefix: PREFIX, maxBytes, lowWatermark: 0.9, minAgeMs: 0, lastUse, now: () => Date.now(), log: pino({ level: 'silent' }) });
}

describe('the evictor lease', () => {
  it('goes to exactly one of replicas racing for it: one generation, written by the one that holds it', async () => {
    const leases = ['a', 'b', 'c', 'd', 'e'].map(leaseOf);
    const held = await Promise.all(leases.map((l) => l.acquire()));
    expect(held.filter(Boolean)).toHaveLength(1);
    const winner = ['a', 'b', 'c', 'd', 'e'][held.indexOf(true)]!;
    expect(leaseObjects()).toEqual([`${LEASES}000000000001`]);
    expect(holderOf(`${LEASES}000000000001`)).toBe(winner);
    expect(leases.map((l) => l.holds())).toEqual(held);
  });

  it('is renewed by its holder past half its time, and handed over only once expired by more than the skew margin', async () => {
    const a = leaseOf('a');
    const b = leaseOf('b');
    expect(await a.acquire()).toBe(true);
    expect(await b.acquire()).toBe(false);

    clock += TTL / 2 + 1; // a renews: generation 2, generation 1 deleted
    expect(await a.acquire()).toBe(true);
    expect(leaseObjects()).toEqual([`${LEASES}000000000002`]);
    const renewedAt = clock;

    clock = renewedAt + TTL - MARGIN; // a stops acting here by its own clock...
    expect(a.holds()).toBe(false);
    clock = renewedAt + TTL + MARGIN; // ...and b does not take over before the lease is MARGIN past its expiry
    expect(await b.acquire()).toBe(false);
    clock += 1;
    expect(await b.acquire()).toBe(true);
    expect(leaseObjects()).toEqual([`${LEASES}000000000003`]);
    expect(holderOf(`${LEASES}000000000003`)).toBe('b');
    expect(await a.acquire()).toBe(false);
    expect(a.holds()).toBe(false);
  });

  it('given up at shutdown, passes to the next replica at once', async () => {
    const a = leaseOf('a');
    expect(await a.acquire()).toBe(true);
    expect(await leaseOf('b').acquire()).toBe(false);
    await a.release();
    expect(a.holds()).toBe(false);
    const b = leaseOf('b');
    expect(await b.acquire()).toBe(true);
    expect(leaseObjects()).toEqual([`${LEASES}000000000003`]);
    expect(holderOf(`${LEASES}000000000003`)).toBe('b');
  });

  it('is not held by a replica whose stale listing let it write a generation already superseded and deleted', async () => {
    expect(await leaseOf('a').acquire()).toBe(true);
    clock += TTL + MARGIN + 1; // a's generation 1 has expired
    const c = leaseOf('c');
    // b listed and read generation 1; before its write of generation 2 lands, c takes generation 2, renews to 3
    // and deletes 1 and 2, so b's forbid-overwrite write of 2 succeeds.
    class Interleaved extends OssObjects {
      override async create(key: string, body: Buffer): Promise<boolean> {
        expect(await c.acquire()).toBe(true);
        clock += TTL / 2 + 1;
        expect(await c.acquire()).toBe(true);
        expect(leaseObjects()).toEqual([`${LEASES}000000000003`]);
        return super.create(key, body);
      }
    }
    const client = ossClient({ bucket: BUCKET, endpoint: oss.cnameEndpoint, cname: true, accessKeyId: 'ak', accessKeySecret: 'secret', timeoutMs: 10_000 });
    const b = new BucketLease({ objects: new Interleaved(client, BUCKET), prefix: PREFIX, name: 'evictor', holder: 'b', now: () => clock, ttlMs: TTL, skewMarginMs: MARGIN });
    expect(await b.acquire()).toBe(false);
    expect(leaseObjects()).toEqual([`${LEASES}000000000002`, `${LEASES}000000000003`]);
    expect(c.holds()).toBe(true);
  });
});

describe('bucket eviction', () => {
  it('gets the bucket under max_size, least recent first, keeping a blob the holder saw used lately', async () => {
    const keys = await seedBlobs(10, 100 * KiB);
    const oldestDigest = `sha256:${keys[0]!.slice(-64)}`;
    const eviction = evictionOf(leaseOf('a'), 500 * KiB, (d) => (d === oldestDigest ? Date.now() : undefined));
    expect(await eviction.run()).toEqual({ blobs: 6, bytes: 600 * KiB });
    // Down to 400 KiB (<= 90 % of 500 KiB): blobs 1-6 went, the oldest stayed for its recent use.
    expect(blobKeys()).toEqual([keys[0]!, ...keys.slice(7)].sort());
    expect(await eviction.run()).toEqual({ blobs: 0, bytes: 0 });
  });

  it('two replicas racing: exactly one evicts, and the other deletes nothing', async () => {
    const keys = await seedBlobs(8, 100 * KiB);
    const before = oss.faults.count('DeleteObject');
    const results = await Promise.all([evictionOf(leaseOf('a'), 450 * KiB).run(), evictionOf(leaseOf('b'), 450 * KiB).run()]);
    expect(results.map((r) => r.blobs).sort()).toEqual([0, 4]);
    expect(oss.faults.count('DeleteObject') - before).toBe(4);
    expect(blobKeys()).toEqual(keys.slice(4).sort());
    expect(leaseObjects()).toEqual([`${LEASES}000000000001`]);
    expect(holderOf(`${LEASES}000000000001`)).toBe(results[0]!.blobs > 0 ? 'a' : 'b');
  });

  it('once stopped (shutdown), starts no round', async () => {
    await seedBlobs(4, 100 * KiB);
    const eviction = evictionOf(leaseOf('a'), 100 * KiB);
    eviction.stop();
    expect(await eviction.run()).toEqual({ blobs: 0, bytes: 0 });
    expect(blobKeys()).toHaveLength(4);
    expect(leaseObjects()).toEqual([]);
  });

  it('a replica that does not hold the lease evicts nothing, however full the bucket', async () => {
    await seedBlobs(4, 100 * KiB);
    expect(await leaseOf('a').acquire()).toBe(true);
    expect(await evictionOf(leaseOf('b'), 100 * KiB).run()).toEqual({ blobs: 0, bytes: 0 });
    expect(blobKeys()).toHaveLength(4);
  });
});

describe('a mirror with storage.oss.max_size', () => {
  it('takes the evictor lease at start-up and evicts blobs committed over an hour ago down to 90 % of max_size', async () => {
    const keys = await seedBlobs(6, 100 * KiB);
    keys.forEach((key, i) => oss.backdateObject(key, new Date(Date.now() - (3 * 3_600_000 - i * 60_000))));
    const m = await startTestMirror(new FakeUpstream(), {
      config: { storage: { dir: 'data', backend: 'oss', oss: { bucket: BUCKET, endpoint: oss.endpoint, prefix: PREFIX, max_size: '350KiB' } } },
      env: { ALIBABA_CLOUD_ACCESS_KEY_ID: 'ak', ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'secret' },
    });
    try {
      // The round's end (its metrics) comes a moment after its last delete.
      await eventually(async () => {
        expect(blobKeys()).toEqual(keys.slice(3).sort());
        const metrics = await (await m.request('/metrics')).text();
        expect(metrics).toContain('acr_mirror_evictions_total{kind="bucket_blob"} 3');
        expect(metrics).toContain('acr_mirror_oss_evictor_lease 1');
      });
      expect(leaseObjects()).toEqual([`${LEASES}000000000001`]);
    } finally {
      await m.close();
    }
  });

  it('keeps the layers of an image the holder served lately, even when their objects are the oldest', async () => {
    const seeded = await seedBlobs(4, 100 * KiB);
    seeded.forEach((key, i) => oss.backdateObject(key, new Date(Date.now() - (3 * 3_600_000 - i * 60_000))));
    const fake = new FakeUpstream();
    const img = fake.add(makeImage('team/app', 'v1', [100 * KiB]));
    const layer = [...img.blobs.entries()].find(([, b]) => b.length === 100 * KiB)![0];
    const layerKey = `${PREFIX}blobs/sha256/${layer.slice(7)}`;
    const dir = await mkdtemp(join(tmpdir(), 'acr-bucket-eviction-'));
    const start = (maxSize: string) => startTestMirror(fake, {
      dir,
      config: { storage: { dir: 'data', backend: 'oss', oss: { bucket: BUCKET, endpoint: oss.endpoint, prefix: PREFIX, max_size: maxSize } } },
      env: { ALIBABA_CLOUD_ACCESS_KEY_ID: 'ak', ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'secret' },
    });
    try {
      const first = await start('10MiB');
      expect((await first.request('/v2/team/app/manifests/v1')).status).toBe(200);
      expect((await first.request(`/v2/team/app/blobs/${layer}`)).status).toBe(200);
      await first.close();
      oss.backdateObject(layerKey, new Date(Date.now() - 5 * 3_600_000)); // older than every seeded blob

      const second = await start('250KiB'); // ~500 KiB in the bucket: down to 225 KiB
      try {
        await eventually(() => expect(blobKeys().filter((k) => seeded.includes(k))).toEqual([seeded[3]!]));
        expect(blobKeys()).toContain(layerKey);
      } finally {
        await second.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
