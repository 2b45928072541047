import OSS from 'ali-oss';
import { OssTestServer } from '../../test/support/oss-server.js';
import { downloadConcurrently } from '../clients.js';
import { imageBytes } from '../fixtures.js';
import { pullEachWay } from '../pull-ways.js';
import { repeat, type BenchContext, type Scenario } from '../scenario.js';
import type { MirrorSettings } from '../mirror.js';
import { atMost, fmt, metric, MiB, ratio, type Metric } from '../stats.js';

const BUCKET = 'bench-cache';
const KEY = { id: 'bench-ak', secret: 'bench-secret' };
const OSS_ENV = { ALIBABA_CLOUD_ACCESS_KEY_ID: KEY.id, ALIBABA_CLOUD_ACCESS_KEY_SECRET: KEY.secret };
/** Blobs held in the test server's memory: the warm blob is kept smaller than scenario 1's. */
const MAX_WARM_BLOB = 256 * MiB;

const COLD_WAYS = ['direct from the upstream', 'through acr-mirror, storage.backend = "fs"', 'through acr-mirror, storage.backend = "oss"'] as const;

/**
 * Scenario 8: the OSS backend against the filesystem one. The bucket is test/support's strict OSS test server (V1
 * signatures, multipart) in the bench process on loopback: what it can send bounds the bucket figures.
 */
export const ossBackend: Scenario = {
  id: 8,
  title: 'OSS backend: a warm blob read from the bucket by a fresh replica, and a cold pull, against the filesystem backend',
  async run(ctx) {
    const oss = await OssTestServer.start({ buckets: [BUCKET], credentials: { [KEY.id]: KEY.secret } });
    let prefixes = 0;
    const ossSettings = (prefix = `cold-${++prefixes}/`): MirrorSettings => ({
      storage: { backend: 'oss' },
      oss: { bucket: BUCKET, endpoint: oss.endpoint, prefix, part_size: '8MiB' },
    });
    try {
      const warm = await warmFromBucket(ctx, oss, ossSettings('warm/'));
      const cold = await coldPulls(ctx, ossSettings);
      return { metrics: [...warm.metrics, ...cold.metrics], checks: cold.checks, notes: [...warm.notes, ...cold.notes] };
    } finally {
      await oss.close();
    }
  },
};

async function warmFromBucket(ctx: BenchContext, oss: OssTestServer, settings: MirrorSettings) {
  const { stack, sizes } = ctx;
  const blob = await stack.fixtures.blob(Math.min(sizes.blobBytes, MAX_WARM_BLOB));
  const blobPath = `/v2/${blob.repo}/blobs/${blob.digest}`;
  const timeoutMs = 60_000 + (blob.size / (20 * MiB)) * 1000;
  const first = await stack.startMirror(undefined, { settings, env: OSS_ENV });
  const speeds = { bucket: [] as number[], disk: [] as number[], server: [] as number[] };
  try {
    ctx.progress(`a first replica fills the bucket with the ${fmt(blob.size / MiB)} MiB blob`);
    await downloadConcurrently(`${first.url}${blobPath}`, 1, blob.size, timeoutMs);
    const signer = new OSS({ endpoint: oss.cnameEndpoint, cname: true, bucket: BUCKET, accessKeyId: KEY.id, accessKeySecret: KEY.secret, secure: false });
    const presigned = signer.signatureUrl(`${settings.oss!.prefix}blobs/sha256/${blob.digest.slice(7)}`, { expires: 3600 });
    const mibPerSecond = (d: { bytes: number; wallMs: number }) => d.bytes / MiB / (d.wallMs / 1000);
    await repeat(sizes.singleClientRuns, async (i) => {
      ctx.progress(`fresh replica, run ${i + 1}/${sizes.singleClientRuns}: the blob from the bucket, then from its own disk`);
      const fresh = await stack.startMirror(undefined, { settings, env: OSS_ENV });
      try {
        speeds.bucket.push(mibPerSecond(await downloadConcurrently(`${fresh.url}${blobPath}`, 1, blob.size, timeoutMs)));
      } finally {
        await fresh.stop();
      }
      speeds.disk.push(mibPerSecond(await downloadConcurrently(`${first.url}${blobPath}`, 1, blob.size, timeoutMs)));
      speeds.server.push(mibPerSecond(await downloadConcurrently(presigned, 1, blob.size, timeoutMs)));
    });
  } finally {
    await first.stop();
  }
  const bucket = metric('warm blob GET, a fresh replica (disk miss, read from the bucket)', 'MiB/s', speeds.bucket);
  const disk = metric('warm blob GET, from the replica\'s disk (a hit, as with storage.backend = "fs")', 'MiB/s', speeds.disk);
  const server = metric('(reference) the same object straight from the OSS test server (presigned GET)', 'MiB/s', speeds.server);
  return {
    metrics: [bucket, disk, server] as Metric[],
    notes: [
      `Warm: a ${fmt(blob.size / MiB)} MiB blob committed to the bucket by a first replica; each run starts a replica with an empty ` +
        'disk on the same bucket and fetches the blob once with curl (it streams from the bucket and keeps a verified local copy), ' +
        'then the same blob from the first replica\'s disk, and straight from the test server by a presigned URL.',
    ],
  };
}

async function coldPulls(ctx: BenchContext, ossSettings: () => MirrorSettings) {
  const { stack, sizes } = ctx;
  const image = await stack.fixtures.image({ repo: 'bench/oss', tag: 'v1', layers: [...sizes.pullLayers] });
  const figures = await pullEachWay(ctx, stack.up, image, [
    { name: COLD_WAYS[0], start: async () => null },
    { name: COLD_WAYS[1], start: () => stack.startMirror() },
    { name: COLD_WAYS[2], start: () => stack.startMirror(undefined, { settings: ossSettings(), env: OSS_ENV }) },
  ]);
  const wall = COLD_WAYS.map((w) => metric(`cold pull wall time, ${w}`, 's', figures.get(w)!.times));
  const bytes = COLD_WAYS.slice(1).map((w) => metric(`bytes from the upstream / image size, ${w}`, 'x', figures.get(w)!.pulled));
  const [direct, fs, bucket] = [wall[0]!, wall[1]!, wall[2]!];
  return {
    metrics: [...wall, ...bytes],
    checks: [
      atMost('OSS backend: upstream bytes = 1.00x the image', bytes[1]!.median, 1.005),
      { target: '(reference) cold pull, OSS backend vs filesystem backend', measured: `${fmt(ratio(bucket, fs))}x`, pass: true },
      { target: '(reference) cold pull, OSS backend vs the direct pull', measured: `${fmt(ratio(bucket, direct))}x`, pass: true },
    ],
    notes: [
      `Cold: scenario 2's image (${sizes.pullLayers.length} layers, ${fmt(imageBytes(image) / MiB)} MiB) pulled by skopeo directly, ` +
        'through a replica on the filesystem backend and through one on the OSS backend (a new key prefix each run: an empty ' +
        'bucket); the OSS replica uploads every blob to the bucket as it arrives (multipart, 8 MiB parts) and completes it once verified.',
    ],
  };
}
