// Bundles whose layout documents are not what they claim are refused as MANIFEST_INVALID naming the problem.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ADMIN_ENV, bearer } from '../support/admin.js';
import { blobEntry as blob, indexEntry as index, LAYOUT } from '../support/bundle-tar.js';
import { FakeUpstream, sha256 } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';
import { tarOf, type TarEntry } from '../support/tar.js';

let m: TestMirror;
beforeEach(async () => {
  m = await startTestMirror(new FakeUpstream(), { env: ADMIN_ENV });
});
afterEach(async () => {
  await m.close();
});

async function importTar(entries: TarEntry[]): Promise<{ status: number; code: string; message: string }> {
  const res = await m.request('/admin/import?names=team/app', { method: 'POST', headers: bearer(), body: new Uint8Array(await tarOf(entries)) });
  const body = (await res.json()) as { errors: { code: string; message: string }[] };
  return { status: res.status, ...body.errors[0]! };
}

describe('bundle import refuses malformed layout documents', () => {
  it('an index.json that is not an OCI index', async () => {
    expect(await importTar([LAYOUT, ['index.json', '{"manifests": "no"}']])).toEqual({
      status: 400,
      code: 'MANIFEST_INVALID',
      message: 'bundle rejected: index.json is not an OCI index',
    });
  });

  it('a manifest that is not JSON', async () => {
    const manifest = 'not json';
    const entry = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(manifest), size: manifest.length, annotations: { 'io.acr-mirror.image.name': 'team/app:v1' } };
    expect(await importTar([LAYOUT, index([entry]), blob(manifest)])).toEqual({
      status: 400,
      code: 'MANIFEST_INVALID',
      message: `bundle rejected: manifest ${sha256(manifest)} is not JSON`,
    });
  });

  it('a manifest that is neither an image manifest nor an index', async () => {
    const manifest = JSON.stringify({ schemaVersion: 1, fsLayers: [] });
    const entry = { digest: sha256(manifest), size: manifest.length, annotations: { 'io.acr-mirror.image.name': 'team/app:v1' } };
    expect(await importTar([LAYOUT, index([entry]), blob(manifest)])).toMatchObject({
      status: 400,
      message: `bundle rejected: manifest ${sha256(manifest)} is neither an image manifest nor an index`,
    });
  });
});
