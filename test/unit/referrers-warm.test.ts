// Warm jobs and bundles with referrers: the signatures and SBOMs of every image (manifests, blobs and the
// referrers list) end up in the cache, so an offline or air-gapped mirror serves them to verifiers.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CachedImage } from '../../src/admin/inventory.js';
import { ADMIN_ENV, bearer, finishedJob, startWarm } from '../support/admin.js';
import { FakeUpstream, type FakeImage, makeArtifact, makeImage, makeIndex } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';

const SIGNATURE = 'application/vnd.cncf.notary.signature';
const SBOM = 'application/spdx+json';

let fake: FakeUpstream;
let image: FakeImage;
let artifacts: FakeImage[];
const mirrors: TestMirror[] = [];
const dirs: string[] = [];

beforeEach(() => {
  fake = new FakeUpstream();
  image = fake.add(makeImage('team/app', 'v1', [1000]));
  const sbom = fake.add(makeArtifact(image, SBOM, 2));
  // A signature of the image and a signature of its SBOM (a referrer of a referrer).
  artifacts = [fake.add(makeArtifact(image, SIGNATURE, 1)), sbom, fake.add(makeArtifact(sbom, SIGNATURE, 3))];
});
afterEach(async () => {
  for (const m of mirrors.splice(0)) await m.close();
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function mirror(opts: Parameters<typeof startTestMirror>[1] = {}): Promise<TestMirror> {
  const m = await startTestMirror(fake, { env: ADMIN_ENV, ...opts });
  mirrors.push(m);
  return m;
}

const cachedImages = async (m: TestMirror) => ((await (await m.request('/admin/images', { headers: bearer() })).json()) as { images: CachedImage[] }).images;

const referrerDigests = async (m: TestMirror, subject: FakeImage) => {
  const res = await m.request(`/v2/team/app/referrers/${subject.manifestDigest}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { manifests: { digest: string }[] }).manifests.map((d) => d.digest).sort();
};

/** Every artifact's manifest and blobs are served from the cache alone. */
async function expectArtifactsCached(m: TestMirror): Promise<void> {
  for (const a of artifacts) {
    const res = await m.request(`/v2/team/app/manifests/${a.manifestDigest}`);
    expect(res.status, a.tag).toBe(200);
    expect(res.headers.get('x-cache')).toBe('hit');
    for (const [digest, bytes] of a.blobs) {
      const blob = await m.request(`/v2/team/app/blobs/${digest}`);
      expect(blob.headers.get('x-cache')).toBe('hit');
      expect(Buffer.from(await blob.arrayBuffer()).equals(bytes)).toBe(true);
    }
  }
}

describe('warm with referrers', () => {
  it('caches the referrers of the image (and theirs), which an offline mirror then serves', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'acr-mirror-referrers-'));
    dirs.push(dir);
    const online = await mirror({ dir });
    const job = await finishedJob(online, (await startWarm(online, { images: ['team/app:v1'], referrers: true })).id);
    expect(job.state, JSON.stringify(job)).toBe('done');
    expect((await cachedImages(online)).find((i) => i.tag === 'v1')?.referrers).toBe(2);
    await online.close();
    mirrors.splice(0);

    const offline = await mirror({ dir, config: { cache: { offline: true } } });
    const calls = fake.calls.length;
    expect(await referrerDigests(offline, image)).toEqual([artifacts[0]!, artifacts[1]!].map((a) => a.manifestDigest).sort());
    expect(await referrerDigests(offline, artifacts[1]!)).toEqual([artifacts[2]!.manifestDigest]);
    await expectArtifactsCached(offline);
    expect(fake.calls.length).toBe(calls);
  });

  it('asks for the referrers of every platform manifest of an index', async () => {
    const multi = makeIndex('team/app', 'multi', ['amd64', 'arm64'], [100], 7);
    for (const i of [multi.index, ...multi.children]) fake.add(i);
    const platformSignature = fake.add(makeArtifact(multi.children[1]!, SIGNATURE, 8));
    const m = await mirror();
    const job = await finishedJob(m, (await startWarm(m, { images: ['team/app:multi'], referrers: true })).id);
    expect(job.state, JSON.stringify(job)).toBe('done');
    for (const d of [multi.index, ...multi.children]) expect(fake.count({ pathIncludes: `/referrers/${d.manifestDigest}`, authorized: true })).toBe(1);
    expect((await m.request(`/v2/team/app/manifests/${platformSignature.manifestDigest}`)).headers.get('x-cache')).toBe('hit');
  });

  it('leaves referrers alone unless asked', async () => {
    const m = await mirror();
    const job = await finishedJob(m, (await startWarm(m, { images: ['team/app:v1'] })).id);
    expect(job.state).toBe('done');
    expect(fake.count({ pathIncludes: '/referrers/' })).toBe(0);
    expect((await cachedImages(m)).find((i) => i.tag === 'v1')?.referrers).toBe(0);
  });
});

describe('export with referrers', () => {
  it('bundles the referrers, which an offline mirror lists after the import', async () => {
    const online = await mirror();
    const res = await online.request('/admin/export', {
      method: 'POST',
      headers: { ...bearer(), 'content-type': 'application/json' },
      body: JSON.stringify({ images: ['team/app:v1'], referrers: true }),
    });
    expect(res.status).toBe(200);
    const tar = Buffer.from(await res.arrayBuffer());

    const airGapped = await mirror({ config: { cache: { offline: true } } });
    const imported = await airGapped.request('/admin/import?names=team/app', { method: 'POST', headers: { ...bearer(), 'content-type': 'application/x-tar' }, body: new Uint8Array(tar) });
    expect(imported.status, await imported.clone().text()).toBe(200);
    const calls = fake.calls.length;
    expect(await referrerDigests(airGapped, image)).toEqual([artifacts[0]!, artifacts[1]!].map((a) => a.manifestDigest).sort());
    expect(await referrerDigests(airGapped, artifacts[1]!)).toEqual([artifacts[2]!.manifestDigest]);
    await expectArtifactsCached(airGapped);
    expect((await airGapped.request('/v2/team/app/manifests/v1')).status).toBe(200);
    expect(fake.calls.length).toBe(calls);
  });
});
