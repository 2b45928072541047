// Manifests are only manifests (issue 17, stored XSS): a body the upstream or a bundle labels with a type a
// browser renders (text/html) must never be cached or served as that type from the mirror's origin.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ADMIN_ENV, bearer } from '../support/admin.js';
import { FakeUpstream, makeImage, sha256 } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';
import { tarOf } from '../support/tar.js';

const OCI = 'application/vnd.oci.image.manifest.v1+json';
const SCRIPT = '<html><body><script>fetch("/admin/export")</script></body></html>';

const mirrors: TestMirror[] = [];
afterEach(async () => {
  for (const m of mirrors.splice(0)) await m.close();
});

async function mirrorOf(fake: FakeUpstream, opts: Parameters<typeof startTestMirror>[1] = {}): Promise<TestMirror> {
  const m = await startTestMirror(fake, { env: ADMIN_ENV, ...opts });
  mirrors.push(m);
  return m;
}

const manifestRows = (m: TestMirror) => m.mirror.db.prepare('SELECT digest, media_type FROM manifests').all();
const tagRows = (m: TestMirror) => m.mirror.db.prepare('SELECT repo, tag FROM tags').all();
const firstError = async (res: Response) => ((await res.json()) as { errors: { code: string; message: string }[] }).errors[0]!;

/** Answers authorized manifest GETs and HEADs of team/app with `body` and `contentType`. */
function answerManifests(fake: FakeUpstream, body: Buffer, contentType: string): void {
  fake.intercept = (call) =>
    call.host === 'registry.test' && call.path.includes('/manifests/') && call.authorization
      ? new Response(call.method === 'HEAD' ? null : new Uint8Array(body), {
          headers: { 'content-type': contentType, 'docker-content-digest': sha256(body), 'content-length': String(body.length) },
        })
      : undefined;
}

describe('manifests from the upstream', () => {
  it('refuses a text/html answer to a manifest GET, naming the media type, and caches nothing', async () => {
    const fake = new FakeUpstream();
    const m = await mirrorOf(fake);
    const html = Buffer.from(SCRIPT);
    answerManifests(fake, html, 'text/html; charset=utf-8');
    for (const path of ['/v2/team/app/manifests/v1', `/v2/team/app/manifests/${sha256(html)}`]) {
      const res = await m.request(path);
      expect(res.status).toBe(502);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      const error = await firstError(res);
      expect(error.code).toBe('UNAVAILABLE');
      expect(error.message).toContain('upstream acr (registry.test)');
      expect(error.message).toContain('text/html');
    }
    expect(manifestRows(m)).toEqual([]);
    expect(tagRows(m)).toEqual([]);
  });

  it('does not pass on a HEAD answer of another type as a manifest', async () => {
    const fake = new FakeUpstream();
    const m = await mirrorOf(fake);
    answerManifests(fake, Buffer.from(SCRIPT), 'text/html');
    const res = await m.request('/v2/team/app/manifests/v1', { method: 'HEAD' });
    expect(res.status).toBe(502);
    expect(res.headers.get('content-type')).not.toContain('text/html');
    expect(manifestRows(m)).toEqual([]);
  });

  it('refuses a body that is not JSON even when labelled as a manifest', async () => {
    const fake = new FakeUpstream();
    const m = await mirrorOf(fake);
    const body = Buffer.from(SCRIPT);
    answerManifests(fake, body, OCI);
    const res = await m.request('/v2/team/app/manifests/v1');
    expect(res.status).toBe(502);
    const error = await firstError(res);
    expect(error.message).toContain('upstream acr (registry.test)');
    expect(error.message).toContain('not JSON');
    expect(manifestRows(m)).toEqual([]);
  });

  it('still serves every manifest and index type, including schema 1 and artifact manifests', async () => {
    const fake = new FakeUpstream();
    const m = await mirrorOf(fake);
    const types = [
      'application/vnd.oci.image.index.v1+json',
      OCI,
      'application/vnd.docker.distribution.manifest.list.v2+json',
      'application/vnd.docker.distribution.manifest.v2+json',
      'application/vnd.docker.distribution.manifest.v1+prettyjws',
      'application/vnd.oci.artifact.manifest.v1+json',
    ];
    for (const [i, type] of types.entries()) {
      const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: type, n: i }));
      answerManifests(fake, body, type);
      const res = await m.request(`/v2/team/app/manifests/${sha256(body)}`);
      expect(res.status, type).toBe(200);
      expect(res.headers.get('content-type')).toBe(type);
      expect(Buffer.from(await res.arrayBuffer()).equals(body)).toBe(true);
    }
    expect(manifestRows(m)).toHaveLength(types.length);
  });
});

/** A bundle of one image team/app:v1 whose index entry carries `mediaType` and whose manifest has `extra` fields. */
async function bundleOf(mediaType: string, extra: Record<string, unknown> = {}): Promise<{ tar: Buffer; manifestDigest: string }> {
  const config = JSON.stringify({ architecture: 'amd64', os: 'linux' });
  const manifest = JSON.stringify({
    schemaVersion: 2,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: [],
    annotations: { note: SCRIPT },
    ...extra,
  });
  const entry = { mediaType, digest: sha256(manifest), size: manifest.length, annotations: { 'io.acr-mirror.image.name': 'team/app:v1' } };
  const blob = (body: string): [string, string] => [`blobs/sha256/${sha256(body).slice(7)}`, body];
  const tar = await tarOf([
    ['oci-layout', JSON.stringify({ imageLayoutVersion: '1.0.0' })],
    ['index.json', JSON.stringify({ schemaVersion: 2, manifests: [entry] })],
    blob(config),
    blob(manifest),
  ]);
  return { tar, manifestDigest: sha256(manifest) };
}

async function importTar(m: TestMirror, tar: Buffer): Promise<Response> {
  return m.request('/admin/import?names=team/app', { method: 'POST', headers: { ...bearer(), 'content-type': 'application/x-tar' }, body: new Uint8Array(tar) });
}

/** The import answered 400 MANIFEST_INVALID with a message naming each of `named`. */
async function expectRefused(res: Response, ...named: string[]): Promise<void> {
  expect(res.status).toBe(400);
  const error = await firstError(res);
  expect(error.code).toBe('MANIFEST_INVALID');
  for (const part of named) expect(error.message).toContain(part);
}

describe('manifests from a bundle', () => {
  it('refuses a bundle whose index names a manifest as text/html and changes nothing', async () => {
    const fake = new FakeUpstream();
    const m = await mirrorOf(fake);
    const kept = fake.add(makeImage('team/app', 'v1', [10]));
    expect((await m.request('/v2/team/app/manifests/v1')).status).toBe(200);
    const before = { manifests: manifestRows(m), tags: tagRows(m) };

    const { tar, manifestDigest } = await bundleOf('text/html');
    await expectRefused(await importTar(m, tar), manifestDigest, 'text/html');
    expect({ manifests: manifestRows(m), tags: tagRows(m) }).toEqual(before);
    const served = await m.request('/v2/team/app/manifests/v1');
    expect(served.headers.get('docker-content-digest')).toBe(kept.manifestDigest);
  });

  it('refuses a manifest over 4 MiB', async () => {
    const m = await mirrorOf(new FakeUpstream());
    const { tar, manifestDigest } = await bundleOf(OCI, { padding: 'x'.repeat(4 * 1024 * 1024) });
    await expectRefused(await importTar(m, tar), manifestDigest, '4194304');
    expect(manifestRows(m)).toEqual([]);
  });

  it('imports a manifest of a manifest type', async () => {
    const m = await mirrorOf(new FakeUpstream());
    const { tar, manifestDigest } = await bundleOf(OCI);
    expect((await importTar(m, tar)).status).toBe(200);
    const res = await m.request('/v2/team/app/manifests/v1');
    expect(res.headers.get('docker-content-digest')).toBe(manifestDigest);
    expect(res.headers.get('content-type')).toBe(OCI);
  });
});

describe('manifests cached before the fix with another media type', () => {
  it('are refused as MANIFEST_INVALID, by digest and by tag, never served, and logged', async () => {
    const fake = new FakeUpstream();
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    });
    const m = await mirrorOf(fake, { log: pino({ level: 'warn' }, sink) });
    const body = Buffer.from(SCRIPT);
    const digest = sha256(body);
    m.mirror.db
      .prepare('INSERT INTO manifests (digest, media_type, size, body, created_at, last_access) VALUES (?, ?, ?, ?, ?, ?)')
      .run(digest, 'text/html', body.length, body, Date.now(), Date.now());
    m.mirror.db.prepare('INSERT INTO tags (upstream, repo, tag, digest, checked_at) VALUES (?, ?, ?, ?, ?)').run('acr', 'team/app', 'v1', digest, Date.now());

    for (const [method, path] of [
      ['GET', `/v2/team/app/manifests/${digest}`],
      ['HEAD', `/v2/team/app/manifests/${digest}`],
      ['GET', '/v2/team/app/manifests/v1'],
    ] as const) {
      const res = await m.request(path, { method });
      expect(res.status, `${method} ${path}`).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      const text = await res.text();
      expect(text).not.toContain('<script>');
      if (method === 'GET') {
        const error = (JSON.parse(text) as { errors: { code: string; message: string }[] }).errors[0]!;
        expect(error.code).toBe('MANIFEST_INVALID');
        expect(error.message).toContain(digest);
        expect(error.message).toContain('text/html');
      }
    }
    expect(fake.count({ pathIncludes: '/manifests/' })).toBe(0);
    const warned = lines.filter((l) => l.digest === digest && l.mediaType === 'text/html');
    expect(warned.length).toBeGreaterThanOrEqual(3);
    expect(warned[0]!.level).toBe(40);
  });
});
