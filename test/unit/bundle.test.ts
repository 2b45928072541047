import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ADMIN_ENV, bearer } from '../support/admin.js';
import { FakeUpstream, makeImage } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';

const mirrors: TestMirror[] = [];
afterEach(async () => {
  for (const m of mirrors.splice(0)) await m.close();
});

async function exported(fake: FakeUpstream, image: string): Promise<Buffer> {
  const online = await startTestMirror(fake, { env: ADMIN_ENV });
  mirrors.push(online);
  const res = await online.request('/admin/export', { method: 'POST', headers: { ...bearer(), 'content-type': 'application/json' }, body: JSON.stringify({ images: [image] }) });
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

async function importInto(m: TestMirror, tar: Buffer): Promise<Response> {
  return m.request('/admin/import?names=team/app', { method: 'POST', headers: { ...bearer(), 'content-type': 'application/x-tar' }, body: new Uint8Array(tar) });
}

describe('bundles through the blob store', () => {
  it('exports a cached image and imports it into another cache, blobs staged through store writers', async () => {
    const fake = new FakeUpstream();
    const img = fake.add(makeImage('team/app', 'v1', [300_000, 5000], 31));
    const tar = await exported(fake, 'team/app:v1');
    const target = await startTestMirror(fake, { env: ADMIN_ENV });
    mirrors.push(target);
    const before = fake.calls.length;
    const res = await importInto(target, tar);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ images: ['team/app:v1'], blobs: img.blobs.size });
    for (const [digest, bytes] of img.blobs) {
      const blob = await target.request(`/v2/team/app/blobs/${digest}`);
      expect(blob.headers.get('x-cache')).toBe('hit');
      expect(Buffer.from(await blob.arrayBuffer()).equals(bytes)).toBe(true);
    }
    expect(fake.calls.length).toBe(before);
    expect(await readdir(join(target.dir, 'data', 'tmp'))).toEqual([]);
  });

  it('refuses a bundle whose blob does not match its digest and leaves nothing in the cache', async () => {
    const fake = new FakeUpstream();
    const img = fake.add(makeImage('team/app', 'v1', [300_000], 32));
    const tar = await exported(fake, 'team/app:v1');
    const [layer, bytes] = [...img.blobs].find(([, b]) => b.length === 300_000)!;
    const at = tar.indexOf(bytes.subarray(0, 64));
    tar[at + 1000] = tar[at + 1000]! ^ 0xff;
    const target = await startTestMirror(fake, { env: ADMIN_ENV });
    mirrors.push(target);
    const res = await importInto(target, tar);
    expect(res.status).toBe(400);
    expect(await res.text()).toContain(`bundle rejected: blob ${layer} in the bundle does not match its digest`);
    expect(await readdir(join(target.dir, 'data', 'tmp'))).toEqual([]);
    expect(await readdir(join(target.dir, 'data', 'blobs'))).toEqual([]);
  });
});
