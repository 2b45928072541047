// Ranged (segmented) fills against real Distribution and the expiring-link nginx "OSS": blobs around and across
// 64 KiB segment boundaries arrive byte-identical over several bounded Range requests, each byte fetched once;
// a kill -9 in the middle of a multi-segment fill commits nothing, and the restarted mirror pulls it cleanly.
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/eventually.js';
import type { RequestRecord } from './harness/fault-proxy.js';
import type { BuiltImage } from './harness/images.js';
import { blobCached, expectCacheConsistent, expectSameImage, mirrorConfig } from './harness/mirror-check.js';
import { startMirror } from './harness/mirror-process.js';
import { startUpstream, type Upstream } from './harness/upstream.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const SEGMENT = 64 * KiB;

/** The byte range a request asked for; fails the test unless it is bounded (`bytes=<start>-<end>`). */
function boundedRange(record: RequestRecord): [number, number] {
  const match = /^bytes=(\d+)-(\d+)$/.exec(String(record.headers.range ?? ''));
  expect(match, `OSS request without a bounded Range: ${String(record.headers.range)}`).not.toBeNull();
  return [Number(match![1]), Number(match![2])];
}

describe('ranged fills against the real upstream', () => {
  let up: Upstream;
  let boundaries: BuiltImage;
  let large: BuiltImage;
  const dataDirs: string[] = [];

  beforeAll(async () => {
    up = await startUpstream();
    // payload sizes chosen so the gzip'd layer blobs are exactly one segment minus one, one, plus one
    [boundaries, large] = await Promise.all([
      up.pushImage({
        kind: 'docker',
        repo: 'team/ranged',
        tag: 'v1',
        layers: [
          { size: 65311, seed: 'ranged/a' },
          { size: 65313, seed: 'ranged/b' },
          { size: 65313, seed: 'ranged/c' },
          3 * MiB,
        ],
        seed: 'ranged-boundaries',
      }),
      up.pushImage({ kind: 'oci', repo: 'team/ranged-crash', tag: 'v1', layers: [3 * MiB], seed: 'ranged-crash' }),
    ]);
  });
  afterAll(async () => {
    await up?.stop();
    for (const dir of dataDirs) await rm(dir, { recursive: true, force: true });
  });

  const config = () =>
    mirrorConfig(up, 'fill_connections = 4\nfill_segment_size = "64KiB"', '[cache]\nprefetch = false');
  const newDataDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'acr-mirror-ranged-'));
    dataDirs.push(dir);
    return dir;
  };
  const copy = (host: string, image: BuiltImage, out: string) =>
    up.skopeo(['copy', '--all', '--src-tls-verify=false', `docker://${host}/${image.repo}:${image.tag}`, `dir:${out}`]);

  it('pulls blobs around segment boundaries byte-identical over bounded Range requests, each byte once', async () => {
    expect(boundaries.blobs.map((b) => b.size)).toEqual(expect.arrayContaining([SEGMENT - 1, SEGMENT, SEGMENT + 1]));
    const dataDir = await newDataDir();
    up.proxy.reset();
    const mirror = await startMirror({ config: config(), env: { ACR_PASSWORD: up.credentials.password }, dataDir });
    try {
      const out = join(up.dir, 'ranged-boundaries');
      const r = await copy(mirror.host, boundaries, out);
      expect(r.code, r.stderr).toBe(0);
      await expectSameImage(out, boundaries);

      for (const blob of boundaries.blobs) {
        const downloads = up.proxy.filter({ front: 'oss', method: 'GET', blob: blob.digest });
        const ranges = downloads.map(boundedRange).sort((a, b) => a[0] - b[0]);
        // one probe of the first segment, then one request per further segment, together covering the blob once
        expect(ranges.length, blob.digest).toBe(Math.max(1, Math.ceil(blob.size / SEGMENT)));
        ranges.forEach(([start, end], i) => {
          expect(start).toBe(i * SEGMENT);
          // the probe asks for a whole segment before the size is known; later segments end at the blob's end
          expect(end).toBe(i === 0 ? SEGMENT - 1 : Math.min(start + SEGMENT, blob.size) - 1);
        });
        expect(downloads.map((d) => d.status)).toEqual(downloads.map(() => 206));
        expect(downloads.reduce((sum, d) => sum + d.bytes, 0), blob.digest).toBe(blob.size);
      }
      const largest = boundaries.blobs.reduce((a, b) => (b.size > a.size ? b : a));
      expect(up.proxy.count({ front: 'oss', method: 'GET', blob: largest.digest })).toBeGreaterThanOrEqual(48);

      const imageBytes = boundaries.blobs.reduce((sum, b) => sum + b.size, 0);
      const ossBytes = up.proxy.filter({ front: 'oss' }).reduce((sum, d) => sum + d.bytes, 0);
      expect((ossBytes / imageBytes).toFixed(2)).toBe('1.00');
      expect(ossBytes).toBe(imageBytes);
      await expectCacheConsistent(dataDir);
    } finally {
      await mirror.stop();
    }
  }, 120_000);

  it('commits nothing of a multi-segment fill killed with -9, and the restarted mirror pulls it cleanly', async () => {
    const blob = large.blobs.reduce((a, b) => (b.size > a.size ? b : a));
    expect(blob.size).toBeGreaterThan(8 * SEGMENT);
    const dataDir = await newDataDir();
    up.proxy.reset();
    // slow OSS (each request at 256 KiB/s, a 3 MiB blob at about 1 MiB/s over 4 connections) keeps the fill in flight
    up.proxy.faults.add({ front: 'oss', method: 'GET', path: /\/data$/, kind: 'throttle', bytesPerSecond: 256 * KiB, times: Infinity });
    const env = { ACR_PASSWORD: up.credentials.password };
    const first = await startMirror({ config: config(), env, dataDir });
    const pull = fetch(`${first.url}/v2/${large.repo}/blobs/${blob.digest}`)
      .then(async (res) => {
        for await (const _ of res.body!);
      })
      .catch(() => 'cut short');
    await eventually(
      () => expect(up.proxy.filter({ front: 'oss', method: 'GET', blob: blob.digest }).filter((d) => d.headers.range).length).toBeGreaterThanOrEqual(4),
      { timeoutMs: 20_000, message: 'Range requests for the large blob' },
    );
    await first.kill();
    expect(await pull).toBe('cut short');
    expect(up.proxy.filter({ front: 'oss', method: 'GET', blob: blob.digest }).some((d) => !d.completed)).toBe(true);
    expect(await blobCached(dataDir, blob.digest)).toBe(false);
    expect((await readdir(join(dataDir, 'tmp'))).length, 'the unfinished fill left its temp file').toBeGreaterThan(0);

    up.proxy.faults.clear();
    const second = await startMirror({ config: config(), env, dataDir });
    try {
      expect(await readdir(join(dataDir, 'tmp')), 'tmp/ is cleaned at start').toEqual([]);
      expect(await blobCached(dataDir, blob.digest)).toBe(false);
      expect(existsSync(join(dataDir, 'mirror.db'))).toBe(true);
      const db = new Database(join(dataDir, 'mirror.db'), { readonly: true, fileMustExist: true });
      try {
        expect(db.prepare('SELECT digest FROM blobs WHERE digest = ?').all(blob.digest)).toEqual([]);
      } finally {
        db.close();
      }
      await expectCacheConsistent(dataDir);

      const out = join(up.dir, 'ranged-after-kill');
      const r = await copy(second.host, large, out);
      expect(r.code, r.stderr).toBe(0);
      await expectSameImage(out, large);
      await expectCacheConsistent(dataDir);
    } finally {
      await second.stop();
    }
  }, 120_000);
});
