import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BUCKET_REST_MS } from '../../src/cache/bucket-faults.js';
import { FakeUpstream, type FakeImage, makeImage } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';
import { OSS_ENV, ossMirrorConfig, resolveLocalhostSubdomains } from '../support/oss-mirror.js';
import { ossStoreFixture, type OssStoreFixture } from '../support/oss-store.js';

resolveLocalhostSubdomains();

let f: OssStoreFixture;
let fake: FakeUpstream;
let m: TestMirror;
let image: FakeImage;
/** How far the mirror's clock is ahead of the real one. */
let ahead = 0;

beforeEach(async () => {
  f = await ossStoreFixture();
  fake = new FakeUpstream();
  image = fake.add(makeImage('team/app', 'v1', [350 * 1024, 2000], 11));
  ahead = 0;
  m = await startTestMirror(fake, { config: ossMirrorConfig(f), env: OSS_ENV, now: () => Date.now() + ahead });
});
afterEach(async () => {
  await m.close();
  await f.cleanup();
});

const upstreamGets = () => fake.count({ method: 'GET' });
const keyOf = (digest: string) => `mirror-a/blobs/sha256/${digest.slice(7)}`;

/** Pulls the image through the mirror (manifest by tag, every blob) and checks every byte. */
async function pull(img: FakeImage): Promise<void> {
  const manifest = await m.request(`/v2/${img.repo}/manifests/${img.tag}`, { headers: { accept: img.mediaType } });
  expect(manifest.status).toBe(200);
  expect(Buffer.from(await manifest.arrayBuffer()).equals(img.manifest)).toBe(true);
  for (const [digest, bytes] of img.blobs) {
    const blob = await m.request(`/v2/${img.repo}/blobs/${digest}`);
    expect(blob.status).toBe(200);
    expect(Buffer.from(await blob.arrayBuffer()).equals(bytes)).toBe(true);
  }
  await m.mirror.fills.settled();
}

/** The image is on this replica's disk: pulling it again asks the upstream nothing. */
async function pullsFromDisk(img: FakeImage): Promise<void> {
  const asked = upstreamGets();
  await pull(img);
  expect(upstreamGets()).toBe(asked);
}

describe('a mirror whose bucket fails serves what the upstream can answer', () => {
  it('still fetches layers ahead with the bucket down: the disk can take them, so prefetches are not dropped', async () => {
    await m.close();
    m = await startTestMirror(fake, { config: { ...ossMirrorConfig(f), cache: { prefetch: true } }, env: OSS_ENV });
    await f.oss.close();
    const manifest = await m.request(`/v2/${image.repo}/manifests/${image.tag}`, { headers: { accept: image.mediaType } });
    expect(manifest.status).toBe(200);
    await m.mirror.fills.settled();
    const cached = (m.mirror.db.prepare('SELECT digest FROM blobs').all() as { digest: string }[]).map((r) => r.digest).sort();
    expect(cached).toEqual([...image.blobs.keys()].sort());
    expect(await m.mirror.metrics.text()).not.toContain('acr_mirror_prefetches_total{result="dropped"}');
  });

  it('pulls an image with the bucket down: exact bytes, kept on the local disk, nothing in the bucket', async () => {
    await f.oss.close();
    await pull(image);
    expect(f.oss.keys()).toEqual([]);
    expect(f.oss.openUploads()).toEqual([]);
    await pullsFromDisk(image);
  });

  it('asks a bucket that does not answer once: after its timeout the bucket rests, manifests and blobs come from the upstream', async () => {
    await m.close();
    m = await startTestMirror(fake, { config: ossMirrorConfig(f, {}, { timeout: '1s' }), env: OSS_ENV, now: () => Date.now() + ahead });
    f.oss.faults.stallNext(Infinity);
    await pull(image);
    await pull(fake.add(makeImage('team/other', 'v2', [1000], 13)));
    // One lookup waited for its timeout; the rest were misses without asking (writes run in the background).
    expect(f.oss.faults.stalled.filter((op) => op === 'GetObject' || op === 'HeadObject')).toEqual(['GetObject']);
  });

  it('keeps blobs on the disk only while the bucket answers 5xx; once back (and rested), the next new blob goes to both', async () => {
    let down = true;
    f.oss.faults.failNext(Infinity, () => down);
    await pull(image);
    expect(f.oss.keys()).toEqual([]);
    expect(f.oss.openUploads()).toEqual([]);
    await pullsFromDisk(image);

    down = false;
    ahead = BUCKET_REST_MS;
    const next = fake.add(makeImage('team/next', 'v1', [250 * 1024], 12));
    await pull(next);
    for (const [digest, bytes] of next.blobs) expect(f.oss.objectBytes(keyOf(digest))?.equals(bytes)).toBe(true);
    for (const digest of image.blobs.keys()) expect(f.oss.objectBytes(keyOf(digest))).toBeUndefined();
  });

  it('a part failing beyond the retries mid-upload: exact bytes, a local copy, no object, the upload aborted', async () => {
    f.oss.faults.failNext(3, (r) => r.operation === 'UploadPart' && r.partNumber === 2);
    await pull(image);
    const [layer] = [...image.blobs.entries()].find(([, b]) => b.length === 350 * 1024)!;
    expect(f.oss.objectBytes(keyOf(layer))).toBeUndefined();
    expect(f.oss.openUploads()).toEqual([]);
    expect(f.oss.faults.count('AbortMultipartUpload')).toBe(1);
    expect(f.oss.faults.count('CompleteMultipartUpload')).toBe(0);
    await pullsFromDisk(image);
  });
});
