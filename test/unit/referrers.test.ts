// The Referrers API (OCI distribution-spec 1.1) through the mirror: listed as the upstream lists them (its own
// Referrers API, paginated, or the referrers tag schema of Distribution 2.8), cached, revalidated like a tag,
// served with the upstream down, and filtered by artifactType.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connectionRefused, FakeUpstream, type FakeImage, makeArtifact, makeImage, makeReferrersTag } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';

const INDEX = 'application/vnd.oci.image.index.v1+json';
const SIGNATURE = 'application/vnd.cncf.notary.signature';
const SBOM = 'application/spdx+json';
const EMPTY_INDEX = '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}';

let fake: FakeUpstream;
let m: TestMirror;
let clock: number;
let image: FakeImage;
let artifacts: FakeImage[];

beforeEach(async () => {
  fake = new FakeUpstream();
  clock = Date.now();
  image = fake.add(makeImage('team/app', 'v1', [100]));
  artifacts = [makeArtifact(image, SIGNATURE, 1), makeArtifact(image, SBOM, 2), makeArtifact(image, SIGNATURE, 3)].map((a) => fake.add(a));
  m = await startTestMirror(fake, { now: () => clock });
});
afterEach(async () => {
  await m.close();
});

/** The descriptor a registry lists for an artifact (OCI 1.1: artifactType and annotations of the manifest). */
function listed(a: FakeImage): Record<string, unknown> {
  const doc = JSON.parse(a.manifest.toString()) as { artifactType: string; annotations: Record<string, string> };
  return { mediaType: a.mediaType, digest: a.manifestDigest, size: a.manifest.length, artifactType: doc.artifactType, annotations: doc.annotations };
}

const referrersPath = (digest = image.manifestDigest, artifactType?: string) =>
  `/v2/team/app/referrers/${digest}${artifactType ? `?artifactType=${encodeURIComponent(artifactType)}` : ''}`;
const upstreamReferrerCalls = () => fake.count({ host: 'registry.test', pathIncludes: '/referrers/', authorized: true });

async function referrers(path: string): Promise<{ res: Response; body: { schemaVersion: number; mediaType: string; manifests: unknown[] } }> {
  const res = await m.request(path);
  expect(res.status, await res.clone().text()).toBe(200);
  expect(res.headers.get('content-type')).toBe(INDEX);
  return { res, body: (await res.json()) as { schemaVersion: number; mediaType: string; manifests: unknown[] } };
}

describe('referrers through the upstream Referrers API', () => {
  it('lists every page as the upstream does, caches the list, and serves it with the upstream down', async () => {
    fake.referrersPageSize = 2;
    const first = await referrers(referrersPath());
    expect(first.body).toEqual({ schemaVersion: 2, mediaType: INDEX, manifests: artifacts.map(listed) });
    expect(first.res.headers.get('x-cache')).toBe('miss');
    expect(first.res.headers.get('oci-filters-applied')).toBeNull();
    expect(upstreamReferrerCalls()).toBe(2);

    const again = await referrers(referrersPath());
    expect(again.res.headers.get('x-cache')).toBe('hit');
    expect(again.body).toEqual(first.body);
    expect(upstreamReferrerCalls()).toBe(2);

    clock += 6 * 60_000;
    fake.intercept = connectionRefused;
    const stale = await referrers(referrersPath());
    expect(stale.res.headers.get('x-cache')).toBe('stale');
    expect(stale.body).toEqual(first.body);
  });

  it('revalidates the list after tag_ttl', async () => {
    await referrers(referrersPath());
    const later = fake.add(makeArtifact(image, SBOM, 4));
    expect((await referrers(referrersPath())).body.manifests).toHaveLength(3);
    clock += 6 * 60_000;
    const renewed = await referrers(referrersPath());
    expect(renewed.body.manifests).toEqual([...artifacts, later].map(listed));
    expect(renewed.res.headers.get('x-cache')).toBe('miss');
  });

  it('passes artifactType upstream and says the answer is filtered when the upstream filtered', async () => {
    fake.referrersPageSize = 1;
    const { res, body } = await referrers(referrersPath(image.manifestDigest, SIGNATURE));
    expect(body.manifests).toEqual([artifacts[0]!, artifacts[2]!].map(listed));
    expect(res.headers.get('oci-filters-applied')).toBe('artifactType');
    const asked = fake.calls.filter((c) => c.path.includes('/referrers/') && c.authorization).map((c) => new URL(c.path, 'https://x').searchParams.get('artifactType'));
    expect(asked).toEqual([SIGNATURE, SIGNATURE]);

    fake.intercept = connectionRefused;
    const cached = await referrers(referrersPath(image.manifestDigest, SIGNATURE));
    expect(cached.body).toEqual(body);
    expect(cached.res.headers.get('oci-filters-applied')).toBe('artifactType');
  });

  it('filters locally when the upstream did not, and from a cached whole list without asking', async () => {
    fake.filtersReferrers = false;
    const { res, body } = await referrers(referrersPath(image.manifestDigest, SBOM));
    expect(body.manifests).toEqual([listed(artifacts[1]!)]);
    expect(res.headers.get('oci-filters-applied')).toBe('artifactType');

    const calls = upstreamReferrerCalls();
    const signatures = await referrers(referrersPath(image.manifestDigest, SIGNATURE));
    expect(signatures.body.manifests).toEqual([artifacts[0]!, artifacts[2]!].map(listed));
    expect(signatures.res.headers.get('oci-filters-applied')).toBe('artifactType');
    expect((await referrers(referrersPath(image.manifestDigest, 'application/none'))).body.manifests).toEqual([]);
    expect(upstreamReferrerCalls()).toBe(calls);
  });

  it('answers an empty index when there are none, and HEAD without a body', async () => {
    const other = fake.add(makeImage('team/app', 'v2', [10], 9));
    const res = await m.request(referrersPath(other.manifestDigest));
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(EMPTY_INDEX);
    const head = await m.request(referrersPath(), { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toBe(INDEX);
    expect(Number(head.headers.get('content-length'))).toBeGreaterThan(EMPTY_INDEX.length);
    expect(await head.text()).toBe('');
  });

  it('refuses a referrers list longer than it keeps, and a next page on another origin, as bad upstream answers', async () => {
    fake.intercept = (call) => {
      if (!call.path.includes('/referrers/') || !call.authorization) return undefined;
      const manifests = Array.from({ length: 2_501 }, () => listed(artifacts[0]!));
      return new Response(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests }), {
        headers: { 'content-type': INDEX, link: `</v2/team/app/referrers/${image.manifestDigest}?page=${fake.calls.length}>; rel="next"` },
      });
    };
    const tooMany = await m.request(referrersPath());
    expect(tooMany.status).toBe(502);
    expect(await tooMany.text()).toContain('more than 10000 referrers');
    expect(upstreamReferrerCalls()).toBe(4);
    const other = fake.add(makeImage('team/app', 'v9', [10], 19));
    fake.intercept = (call) =>
      call.path.includes('/referrers/') && call.authorization
        ? new Response(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [] }), { headers: { link: '<https://elsewhere.test/v2/x>; rel="next"' } })
        : undefined;
    const offsite = await m.request(referrersPath(other.manifestDigest));
    expect(offsite.status).toBe(502);
    expect(fake.count({ host: 'elsewhere.test' })).toBe(0);
  });

  it('refuses an invalid digest with 400 before asking the upstream', async () => {
    for (const bad of ['sha256:abc', 'nodigest', 'sha512:' + 'a'.repeat(128)]) {
      const res = await m.request(`/v2/team/app/referrers/${bad}`);
      expect(res.status, bad).toBe(400);
      expect(((await res.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('DIGEST_INVALID');
    }
    expect(upstreamReferrerCalls()).toBe(0);
  });

  it('pulls the artifacts through like images: an OCI manifest with artifactType, the empty config and its blobs', async () => {
    const sig = artifacts[0]!;
    const res = await m.request(`/v2/team/app/manifests/${sig.manifestDigest}`);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(sig.manifest)).toBe(true);
    for (const [digest, bytes] of sig.blobs) {
      const blob = await m.request(`/v2/team/app/blobs/${digest}`);
      expect(Buffer.from(await blob.arrayBuffer()).equals(bytes)).toBe(true);
    }
  });

  it('lists the cached manifests that refer to a cached image when the upstream cannot be asked and no list was cached', async () => {
    for (const d of [image, artifacts[1]!]) expect((await m.request(`/v2/team/app/manifests/${d.manifestDigest}`)).status).toBe(200);
    fake.intercept = connectionRefused;
    const { res, body } = await referrers(referrersPath());
    expect(body.manifests).toEqual([listed(artifacts[1]!)]);
    expect(res.headers.get('x-cache')).toBe('stale');
    const unknown = await m.request(referrersPath(artifacts[0]!.manifestDigest));
    expect(unknown.status).toBe(503);
  });
});

describe('referrers through the referrers tag schema (an upstream without the Referrers API)', () => {
  beforeEach(() => {
    fake.referrersApi = 'absent';
  });

  it('lists the sha256-<hex> tag index, caches it, serves it with the upstream down, filtering locally', async () => {
    fake.add(makeReferrersTag(image, artifacts));
    const first = await referrers(referrersPath());
    expect(first.body).toEqual({ schemaVersion: 2, mediaType: INDEX, manifests: artifacts.map(listed) });
    expect(fake.count({ host: 'registry.test', pathIncludes: `/manifests/${image.manifestDigest.replace(':', '-')}`, authorized: true })).toBe(1);

    fake.intercept = connectionRefused;
    const offline = await referrers(referrersPath());
    expect(offline.body).toEqual(first.body);
    expect(offline.res.headers.get('x-cache')).toBe('hit');
    const sboms = await referrers(referrersPath(image.manifestDigest, SBOM));
    expect(sboms.body.manifests).toEqual([listed(artifacts[1]!)]);
    expect(sboms.res.headers.get('oci-filters-applied')).toBe('artifactType');
  });

  it('answers an empty index when the image has no referrers tag, and probes the Referrers API once an hour', async () => {
    const res = await m.request(referrersPath());
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(EMPTY_INDEX);
    expect((await referrers(referrersPath(artifacts[0]!.manifestDigest))).body.manifests).toEqual([]);
    expect(upstreamReferrerCalls()).toBe(1);
    clock += 61 * 60_000;
    await referrers(referrersPath(artifacts[1]!.manifestDigest));
    expect(upstreamReferrerCalls()).toBe(2);
  });
});
