// The negative cache: an upstream 404 for a manifest is remembered for cache.not_found_ttl per
// (upstream, repository, reference), so clients retrying a missing image cost the upstream one request per TTL.
import { afterEach, describe, expect, it } from 'vitest';
import { ADMIN_ENV, finishedJob, startWarm } from '../support/admin.js';
import { FakeUpstream, makeImage } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';

let fake: FakeUpstream;
let m: TestMirror;
let clock: number;

async function start(cache: Record<string, unknown> = {}): Promise<void> {
  fake = new FakeUpstream();
  clock = Date.now();
  m = await startTestMirror(fake, { now: () => clock, env: ADMIN_ENV, config: { cache } });
}
afterEach(async () => {
  await m.close();
});

const upstreamAsks = (reference: string) => fake.count({ host: 'registry.test', pathIncludes: `/manifests/${reference}`, authorized: true });
const status = async (path: string, method = 'GET') => (await m.request(path, { method })).status;

describe('negative cache', () => {
  it('asks the upstream once per not_found_ttl for a missing tag, and counts the negative hits', async () => {
    await start();
    for (let i = 0; i < 5; i++) expect(await status('/v2/team/app/manifests/nope')).toBe(404);
    expect(await status('/v2/team/app/manifests/nope', 'HEAD')).toBe(404);
    expect(upstreamAsks('nope')).toBe(1);
    const metrics = await (await m.request('/metrics')).text();
    expect(metrics).toContain('acr_mirror_not_found_hits_total{upstream="acr"} 5');

    clock += 29_000;
    expect(await status('/v2/team/app/manifests/nope')).toBe(404);
    expect(upstreamAsks('nope')).toBe(1);
    clock += 2_000;
    expect(await status('/v2/team/app/manifests/nope')).toBe(404);
    expect(upstreamAsks('nope')).toBe(2);
  });

  it('keys by repository and reference: other names still reach the upstream, and a digest that turns up is served', async () => {
    await start();
    const img = fake.add(makeImage('team/app', 'v1', [10]));
    fake.images.length = 0;
    expect(await status(`/v2/team/app/manifests/${img.manifestDigest}`)).toBe(404);
    expect(await status('/v2/team/other/manifests/v1')).toBe(404);
    fake.add(img);
    expect(await status('/v2/team/app/manifests/v1')).toBe(200);
    expect(await status(`/v2/team/app/manifests/${img.manifestDigest}`)).toBe(200);
  });

  it('a warm of the missing tag is not answered from the negative cache, and clears it', async () => {
    await start();
    expect(await status('/v2/team/app/manifests/late')).toBe(404);
    fake.add(makeImage('team/app', 'late', [10]));
    expect(await status('/v2/team/app/manifests/late')).toBe(404);
    const job = await finishedJob(m, (await startWarm(m, { images: ['team/app:late'] })).id);
    expect(job.state).toBe('done');
    expect(upstreamAsks('late')).toBe(2);
    const res = await m.request('/v2/team/app/manifests/late');
    expect(res.status).toBe(200);
  });

  it('not_found_ttl = "0s" disables it', async () => {
    await start({ not_found_ttl: '0s' });
    for (let i = 0; i < 3; i++) expect(await status('/v2/team/app/manifests/nope')).toBe(404);
    expect(upstreamAsks('nope')).toBe(3);
  });
});
