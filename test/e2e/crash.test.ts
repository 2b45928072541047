// kill -9 the mirror at random points during fills of a large image, 20 times, restarting on the same cache
// each time. Afterwards every blob on disk matches its digest, every cached tag pulls with skopeo byte for
// byte, and no response, complete or cut short, ever carried a byte that differs from the real blob.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltImage } from './harness/images.js';
import { expectCacheConsistent, expectSameImage, mirrorConfig } from './harness/mirror-check.js';
import { startMirror } from './harness/mirror-process.js';
import { startUpstream, type Upstream } from './harness/upstream.js';

const MiB = 1024 * 1024;
const ROUNDS = 20;

describe('crash safety', () => {
  let up: Upstream;
  let images: BuiltImage[];
  let dataDir: string;

  beforeAll(async () => {
    up = await startUpstream();
    images = await Promise.all([
      up.pushImage({ kind: 'docker', repo: 'team/large', tag: 'v1', layers: [6 * MiB, 5 * MiB, 4 * MiB, 3 * MiB, 2 * MiB], seed: 'crash-large' }),
      up.pushImage({ kind: 'oci-index', repo: 'team/multi', tag: 'v1', layers: [3 * MiB, 1 * MiB], seed: 'crash-multi' }),
    ]);
    dataDir = await mkdtemp(join(tmpdir(), 'acr-mirror-crash-'));
  });
  afterAll(async () => {
    await up?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it(`survives ${ROUNDS} kill -9 during fills and serves only correct bytes`, async () => {
    const originals = new Map<string, Buffer>();
    for (const image of images) for (const b of image.blobs) originals.set(b.digest, await readFile(b.path));
    const config = mirrorConfig(up);
    let seed = 12345;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let checkedBytes = 0;
    let interrupted = 0;

    for (let round = 0; round < ROUNDS; round++) {
      // slow OSS (about 20 MiB/s per transfer) so the kill lands in the middle of fills
      up.proxy.faults.clear();
      up.proxy.faults.add({ front: 'oss', method: 'GET', path: /\/data$/, kind: 'throttle', bytesPerSecond: 20 * MiB, times: Infinity });
      const mirror = await startMirror({ config, env: { ACR_PASSWORD: up.credentials.password }, dataDir });
      const pulls = [...originals.entries()].map(async ([digest, original]) => {
        const repo = images.find((i) => i.blobs.some((b) => b.digest === digest))!.repo;
        let received = 0;
        try {
          const res = await fetch(`${mirror.url}/v2/${repo}/blobs/${digest}`);
          if (res.status !== 200) return;
          for await (const chunk of res.body!) {
            const part = Buffer.from(chunk);
            // every byte a client ever gets must be the blob's own byte at that offset
            expect(part.equals(original.subarray(received, received + part.length)), `round ${round} ${digest} @${received}`).toBe(true);
            received += part.length;
          }
          expect(received).toBe(original.length);
        } catch (err) {
          if ((err as Error).name === 'AssertionError') throw err;
          interrupted++; // the mirror was killed under this transfer
        } finally {
          checkedBytes += received;
        }
      });
      await new Promise((r) => setTimeout(r, 50 + random() * 400));
      await mirror.kill();
      await Promise.all(pulls);
    }

    up.proxy.faults.clear();
    const mirror = await startMirror({ config, env: { ACR_PASSWORD: up.credentials.password }, dataDir });
    try {
      // a blob renamed into place just before a kill gets its row from the reconciliation after start-up
      await expectCacheConsistent(dataDir, { timeoutMs: 10_000 });
      for (const image of images) {
        const out = join(up.dir, `after-crash-${image.repo.replace('/', '-')}`);
        const r = await up.skopeo(['copy', '--all', '--src-tls-verify=false', `docker://${mirror.host}/${image.repo}:${image.tag}`, `dir:${out}`]);
        expect(r.code, r.stderr).toBe(0);
        await expectSameImage(out, image);
      }
      await expectCacheConsistent(dataDir);
      expect(checkedBytes).toBeGreaterThan(0);
      expect(interrupted, 'transfers cut by a kill').toBeGreaterThanOrEqual(5);
    } finally {
      await mirror.stop();
    }
  }, 240_000);
});
