// What an imported bundle may change: only the names the operator allows, no tag moved without replace, and
// only the bundle the exporter announced (expect_digest). Every refusal leaves the cache as it was.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ADMIN_ENV, bearer } from '../support/admin.js';
import { bundleEntries } from '../support/bundle-tar.js';
import { FakeUpstream, makeImage, sha256 } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';
import { tarOf } from '../support/tar.js';

let fake: FakeUpstream;
let m: TestMirror;
beforeEach(async () => {
  m = await startTestMirror((fake = new FakeUpstream()), { env: ADMIN_ENV });
});
afterEach(() => m.close());

async function importTar(tar: Buffer, query: string): Promise<{ status: number; body: any }> {
  const res = await m.request(`/admin/import?${query}`, { method: 'POST', headers: { ...bearer(), 'content-type': 'application/x-tar' }, body: new Uint8Array(tar) });
  return { status: res.status, body: await res.json() };
}

async function cachedTags(): Promise<string[]> {
  const res = await m.request('/admin/images', { headers: bearer() });
  const { images } = (await res.json()) as { images: { repository: string; tag: string; digest: string }[] };
  return images.map((i) => `${i.repository}:${i.tag}@${i.digest}`).sort();
}

describe('bundle import names', () => {
  it('refuses a bundle naming a repository it was not allowed to add, naming it, and changes nothing', async () => {
    const nginx = fake.add(makeImage('library/nginx', '1.25', [2000], 1));
    expect((await m.request('/v2/library/nginx/manifests/1.25')).status).toBe(200);
    const before = await cachedTags();
    const poisoned = makeImage('library/nginx', '1.25', [2000], 2);
    const app = makeImage('team/app', '1.2', [3000], 3);
    const tar = await tarOf(bundleEntries([{ name: 'team/app:1.2', image: app }, { name: 'library/nginx:1.25', image: poisoned }]));

    const refused = await importTar(tar, 'names=team/app');
    expect(refused.status).toBe(403);
    expect(refused.body.errors[0].message).toBe('bundle rejected: it names library/nginx, which this import may not add (allowed: team/app)');
    expect(await cachedTags()).toEqual(before);
    expect(before).toEqual([`library/nginx:1.25@${nginx.manifestDigest}`]);
  });

  it('refuses an import that names no repository at all', async () => {
    const app = makeImage('team/app', '1.2', [3000], 3);
    const refused = await importTar(await tarOf(bundleEntries([{ name: 'team/app:1.2', image: app }])), '');
    expect(refused.status).toBe(400);
    expect(refused.body.errors[0].message).toContain('name the repositories the bundle may add');
    expect(await cachedTags()).toEqual([]);
  });

  it('takes names repeated or comma-separated', async () => {
    const a = makeImage('team/app', '1.2', [3000], 3);
    const b = makeImage('team/db', '7', [3000], 4);
    const ok = await importTar(await tarOf(bundleEntries([{ name: 'team/app:1.2', image: a }, { name: 'team/db:7', image: b }])), 'names=x/y,team/app&names=team/db');
    expect(ok.status).toBe(200);
    expect(await cachedTags()).toEqual([`team/app:1.2@${a.manifestDigest}`, `team/db:7@${b.manifestDigest}`]);
  });
});

describe('bundle import tags', () => {
  it('adds tags, refuses to move one without replace, and reports old -> new with replace', async () => {
    const v1 = makeImage('team/app', '1.2', [3000], 5);
    const v2 = makeImage('team/app', '1.2', [3000], 6);
    const first = await importTar(await tarOf(bundleEntries([{ name: 'team/app:1.2', image: v1 }])), 'names=team/app');
    expect(first.status).toBe(200);
    expect(first.body.tags).toEqual([{ image: 'team/app:1.2', change: 'added', old: null, new: v1.manifestDigest }]);

    const moved = await tarOf(bundleEntries([{ name: 'team/app:1.2', image: v2 }]));
    const refused = await importTar(moved, 'names=team/app');
    expect(refused.status).toBe(403);
    expect(refused.body.errors[0].message).toBe(
      `bundle rejected: it moves team/app:1.2 from ${v1.manifestDigest} to ${v2.manifestDigest} (pass --replace, or replace=true, to allow it)`,
    );
    expect(await cachedTags()).toEqual([`team/app:1.2@${v1.manifestDigest}`]);

    const replaced = await importTar(moved, 'names=team/app&replace=true');
    expect(replaced.status).toBe(200);
    expect(replaced.body.tags).toEqual([{ image: 'team/app:1.2', change: 'replaced', old: v1.manifestDigest, new: v2.manifestDigest }]);
    expect(await cachedTags()).toEqual([`team/app:1.2@${v2.manifestDigest}`]);

    const again = await importTar(moved, 'names=team/app');
    expect(again.status).toBe(200);
    expect(again.body.tags).toEqual([{ image: 'team/app:1.2', change: 'unchanged', old: v2.manifestDigest, new: v2.manifestDigest }]);
  });
});

describe('bundle import expect_digest', () => {
  it('export announces the index.json digest; import refuses a bundle whose index.json differs', async () => {
    fake.add(makeImage('team/app', '1.2', [3000], 7));
    const exported = await m.request('/admin/export', { method: 'POST', headers: { ...bearer(), 'content-type': 'application/json' }, body: JSON.stringify({ images: ['team/app:1.2'] }) });
    expect(exported.status).toBe(200);
    const announced = exported.headers.get('x-bundle-index-digest');
    const tar = Buffer.from(await exported.arrayBuffer());
    const other = await startTestMirror(new FakeUpstream(), { env: ADMIN_ENV });
    try {
      const indexJson = tar.subarray(tar.indexOf('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"'));
      expect(announced).toBe(sha256(indexJson.subarray(0, indexJson.indexOf(0))));
      const wrong = `sha256:${'0'.repeat(64)}`;
      const send = (query: string) => other.request(`/admin/import?${query}`, { method: 'POST', headers: bearer(), body: new Uint8Array(tar) });
      const refused = await send(`names=team/app&expect_digest=${wrong}`);
      expect(refused.status).toBe(400);
      expect(((await refused.json()) as any).errors[0].message).toBe(`bundle rejected: its index.json is ${announced}, not the expected ${wrong}`);
      expect((await (await other.request('/admin/images', { headers: bearer() })).json()).images).toEqual([]);
      const ok = await send(`names=team/app&expect_digest=${announced}`);
      expect(ok.status).toBe(200);
      expect(((await ok.json()) as any).indexDigest).toBe(announced);
    } finally {
      await other.close();
    }
  });
});
