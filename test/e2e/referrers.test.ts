// Referrers (OCI 1.1) through the mirror from a real Distribution 2.8, which has no Referrers API: the mirror
// falls back to the referrers tag schema (`sha256-<hex>`), lists the artifacts as the tag's index does, pulls
// them through, and after a warm with referrers an offline mirror on the same cache serves all of it.
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltImage } from './harness/images.js';
import { mirrorConfig } from './harness/mirror-check.js';
import { startMirror, type MirrorProcess } from './harness/mirror-process.js';
import { PUSH_CREDENTIALS, startUpstream, type Upstream } from './harness/upstream.js';

const TOKEN = 'referrers-test-admin-token-0123456789';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const SIGNATURE = 'application/vnd.example.signature.v1';
const SBOM = 'application/vnd.example.sbom.v1';
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface Artifact {
  digest: string;
  manifest: Buffer;
  blobs: Map<string, Buffer>;
  descriptor: Record<string, unknown>;
}

/** Pushes an artifact manifest (empty config, one payload layer, subject) with skopeo, from an OCI layout. */
async function pushArtifact(up: Upstream, repo: string, subject: BuiltImage, artifactType: string, name: string): Promise<Artifact> {
  const empty = Buffer.from('{}');
  const payload = Buffer.from(`${name} of ${subject.digest}\n`.repeat(40));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: empty.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(payload), size: payload.length }],
      subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.manifest.length },
      annotations: { 'org.example.name': name },
    }),
  );
  const layout = join(up.dir, `artifact-${name}`);
  await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
  for (const b of [empty, payload, manifest]) await writeFile(join(layout, 'blobs', 'sha256', sha256(b).slice(7)), b);
  await writeFile(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  const entry = { mediaType: OCI_MANIFEST, digest: sha256(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': name } };
  await writeFile(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [entry] }));
  const r = await up.skopeo([
    'copy', '--quiet', '--preserve-digests', '--dest-tls-verify=false', '--dest-creds', `${PUSH_CREDENTIALS.username}:${PUSH_CREDENTIALS.password}`,
    `oci:${layout}:${name}`, `docker://${up.pushHost}/${repo}:${name}`,
  ]);
  if (r.code !== 0) throw new Error(`pushing ${name} failed:\n${r.stderr}`);
  const descriptor = { mediaType: OCI_MANIFEST, digest: sha256(manifest), size: manifest.length, artifactType, annotations: { 'org.example.name': name } };
  return { digest: sha256(manifest), manifest, blobs: new Map([empty, payload].map((b) => [sha256(b), b])), descriptor };
}

/**
 * PUTs a manifest as the push user (the token dance by hand: skopeo 1.9 cannot write an index whose descriptors
 * carry artifactType with --preserve-digests).
 */
async function putManifest(up: Upstream, repo: string, reference: string, mediaType: string, body: Buffer): Promise<void> {
  const url = `http://${up.pushHost}/v2/${repo}/manifests/${reference}`;
  const first = await fetch(url, { method: 'PUT', headers: { 'content-type': mediaType }, body: new Uint8Array(body) });
  const challenge = first.headers.get('www-authenticate') ?? '';
  const param = (k: string) => new RegExp(`${k}="([^"]*)"`).exec(challenge)?.[1] ?? '';
  const basic = Buffer.from(`${PUSH_CREDENTIALS.username}:${PUSH_CREDENTIALS.password}`).toString('base64');
  const tokenUrl = `${param('realm')}?${new URLSearchParams({ service: param('service'), scope: param('scope') })}`;
  const answer = (await (await fetch(tokenUrl, { headers: { authorization: `Basic ${basic}` } })).json()) as { token?: string; access_token?: string };
  const res = await fetch(url, { method: 'PUT', headers: { 'content-type': mediaType, authorization: `Bearer ${answer.token ?? answer.access_token}` }, body: new Uint8Array(body) });
  if (res.status !== 201) throw new Error(`PUT ${reference}: ${res.status} ${await res.text()}`);
}

describe('referrers from Distribution 2.8 (referrers tag schema)', () => {
  let up: Upstream;
  let mirror: MirrorProcess;
  let image: BuiltImage;
  let artifacts: Artifact[];
  let dataDir: string;
  const repo = 'team/signed';

  beforeAll(async () => {
    up = await startUpstream();
    image = await up.pushImage({ kind: 'oci', repo, tag: 'v1', layers: [200_000], seed: 'referrers-e2e' });
    artifacts = [await pushArtifact(up, repo, image, SIGNATURE, 'signature'), await pushArtifact(up, repo, image, SBOM, 'sbom')];
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: artifacts.map((a) => a.descriptor) }));
    await putManifest(up, repo, image.digest.replace(':', '-'), OCI_INDEX, index);
    // the offline mirror of the last test reopens this cache
    dataDir = join(up.dir, 'mirror-data');
    mirror = await startMirror({ config: mirrorConfig(up), env: { ACR_PASSWORD: up.credentials.password, ACR_MIRROR_ADMIN_TOKEN: TOKEN }, dataDir });
  }, 120_000);
  afterAll(async () => {
    await mirror?.stop();
    await up?.stop();
  });

  it('lists the referrers as the tag index does, filters them, and pulls the artifacts through', async () => {
    const direct = await fetch(`${up.directRegistryUrl}/v2/${repo}/referrers/${image.digest}`);
    expect(direct.status).toBe(404);
    const res = await fetch(`${mirror.url}/v2/${repo}/referrers/${image.digest}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(OCI_INDEX);
    expect(((await res.json()) as { manifests: unknown[] }).manifests).toEqual(artifacts.map((a) => a.descriptor));
    const sboms = await fetch(`${mirror.url}/v2/${repo}/referrers/${image.digest}?artifactType=${encodeURIComponent(SBOM)}`);
    expect(sboms.headers.get('oci-filters-applied')).toBe('artifactType');
    expect(((await sboms.json()) as { manifests: unknown[] }).manifests).toEqual([artifacts[1]!.descriptor]);
    const none = await fetch(`${mirror.url}/v2/${repo}/referrers/${artifacts[0]!.digest}`);
    expect(await none.text()).toBe('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}');
    const manifest = await fetch(`${mirror.url}/v2/${repo}/manifests/${artifacts[0]!.digest}`, { headers: { accept: OCI_MANIFEST } });
    expect(manifest.status).toBe(200);
    expect(Buffer.from(await manifest.arrayBuffer()).equals(artifacts[0]!.manifest)).toBe(true);
  });

  it('after a warm with referrers, an offline mirror on the same cache serves the list, the artifacts and their blobs', async () => {
    const started = await fetch(`${mirror.url}/admin/warm`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ images: [`${repo}:v1`], referrers: true }),
    });
    expect(started.status).toBe(202);
    const { id } = (await started.json()) as { id: string };
    let state = 'running';
    for (let i = 0; i < 300 && state === 'running'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      state = ((await (await fetch(`${mirror.url}/admin/jobs/${id}`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { state: string }).state;
    }
    expect(state).toBe('done');
    await mirror.stop();
    mirror = await startMirror({ config: mirrorConfig(up, 'offline = true'), env: { ACR_PASSWORD: 'unused', ACR_MIRROR_ADMIN_TOKEN: TOKEN }, dataDir });
    up.proxy.reset();
    const res = await fetch(`${mirror.url}/v2/${repo}/referrers/${image.digest}`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { manifests: unknown[] }).manifests).toEqual(artifacts.map((a) => a.descriptor));
    for (const a of artifacts) {
      const m = await fetch(`${mirror.url}/v2/${repo}/manifests/${a.digest}`, { headers: { accept: OCI_MANIFEST } });
      expect(m.status).toBe(200);
      for (const [digest, bytes] of a.blobs) {
        const b = await fetch(`${mirror.url}/v2/${repo}/blobs/${digest}`);
        expect(b.headers.get('x-cache')).toBe('hit');
        expect(Buffer.from(await b.arrayBuffer()).equals(bytes)).toBe(true);
      }
    }
    expect(up.proxy.count({})).toBe(0);
  });
});
