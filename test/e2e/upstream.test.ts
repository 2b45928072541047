// Proves the e2e test upstream itself (no mirror involved): Distribution behind the fault proxy, token auth,
// blob redirects to signed, expiring OSS links, byte-exact images, faults, and a clean stop().
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileDigest, MediaType, type BlobFile, type BuiltImage } from './harness/images.js';
import { signUrl } from './harness/oss.js';
import type { RunResult } from './harness/proc.js';
import { startUpstream, type Upstream } from './harness/upstream.js';

describe('e2e test upstream', () => {
  let up: Upstream;
  let images: BuiltImage[];

  beforeAll(async () => {
    up = await startUpstream();
    images = await Promise.all([
      up.pushImage({ kind: 'docker', repo: 'team/app', tag: 'v1' }),
      up.pushImage({ kind: 'oci', repo: 'team/oci-app', tag: '1.0' }),
      up.pushImage({ kind: 'oci-index', repo: 'library/multi', tag: 'latest' }),
      up.pushImage({ kind: 'docker-list', repo: 'team/legacy-multi', tag: 'v2' }),
    ]);
  });

  afterAll(async () => {
    await up?.stop();
  });

  const ref = (image: BuiltImage, reference = `:${image.tag}`): string =>
    `docker://${up.registryHost}/${image.repo}${reference}`;
  const creds = (): string => `${up.credentials.username}:${up.credentials.password}`;
  const inspectRaw = (target: string): Promise<RunResult> =>
    up.skopeo(['inspect', '--raw', '--tls-verify=false', '--creds', creds(), target]);

  it('built every kind of image', () => {
    expect(images.map((i) => i.mediaType)).toEqual([
      MediaType.dockerManifest,
      MediaType.ociManifest,
      MediaType.ociIndex,
      MediaType.dockerList,
    ]);
    expect(images[3]?.manifests.map((m) => [m.platform.architecture, m.mediaType])).toEqual([
      ['amd64', MediaType.dockerManifest],
      ['arm64', MediaType.dockerManifest],
    ]);
  });

  it('serves every manifest byte for byte, by tag and by digest', async () => {
    for (const image of images) {
      const byTag = await inspectRaw(ref(image));
      expect(byTag.code, byTag.stderr).toBe(0);
      expect(Buffer.from(byTag.stdout).equals(image.manifest)).toBe(true);
      for (const m of image.manifests) {
        const byDigest = await inspectRaw(ref(image, `@${m.digest}`));
        expect(byDigest.code, byDigest.stderr).toBe(0);
        expect(Buffer.from(byDigest.stdout).equals(m.bytes)).toBe(true);
      }
    }
  });

  it('copies every blob byte-identical through 307 redirects to signed OSS links without Authorization', async () => {
    up.proxy.reset();
    for (const image of images) {
      const out = join(up.dir, `pulled-${image.kind}`);
      const r = await up.skopeo(['copy', '--all', '--src-tls-verify=false', '--src-creds', creds(), ref(image), `dir:${out}`]);
      expect(r.code, r.stderr).toBe(0);
      expect((await readFile(join(out, 'manifest.json'))).equals(image.manifest)).toBe(true);
      if (image.kind === 'oci-index' || image.kind === 'docker-list') {
        for (const m of image.manifests) {
          expect((await readFile(join(out, `${hex(m.digest)}.manifest.json`))).equals(m.bytes)).toBe(true);
        }
      }
      for (const blob of image.blobs) {
        const pulled = join(out, hex(blob.digest));
        expect((await stat(pulled)).size).toBe(blob.size);
        expect(await fileDigest(pulled)).toBe(blob.digest);
        expect((await readFile(pulled)).equals(await readFile(blob.path))).toBe(true);

        const redirects = up.proxy.filter({ front: 'registry', method: 'GET', blob: blob.digest });
        expect(redirects.map((x) => x.status)).toEqual([307]);
        expect(redirects[0]?.location).toMatch(
          new RegExp(`^${up.proxy.ossUrl}${blobPath(blob.digest)}\\?Expires=\\d+&OSSAccessKeyId=test-ak&Signature=[\\w-]+$`),
        );
        const downloads = up.proxy.filter({ front: 'oss', method: 'GET', blob: blob.digest });
        expect(downloads.map((x) => [x.status, x.bytes, x.authorization, x.completed])).toEqual([[200, blob.size, false, true]]);
      }
    }
    expect(up.proxy.count({ front: 'oss' })).toBe(images.reduce((n, i) => n + i.blobs.length, 0));
    expect(up.tokenServer.issued.filter((t) => t.user === up.credentials.username).map((t) => t.access)).toContainEqual([
      { type: 'repository', name: 'library/multi', actions: ['pull'] },
    ]);
  });

  describe('OSS stand-in', () => {
    it('serves signed links with HEAD and Range, refuses unsigned and expired ones', async () => {
      const blob = images[0]!.blobs[1]!;
      const path = blobPath(blob.digest);
      const head = await fetch(up.oss.url + signUrl(path, 60), { method: 'HEAD' });
      expect([head.status, head.headers.get('content-length')]).toEqual([200, String(blob.size)]);
      const range = await fetch(up.oss.url + signUrl(path, 60), { headers: { range: 'bytes=10-19' } });
      expect(range.status).toBe(206);
      expect(Buffer.from(await range.arrayBuffer()).equals((await readFile(blob.path)).subarray(10, 20))).toBe(true);

      const expired = await fetch(up.oss.url + signUrl(path, -1));
      expect(expired.status).toBe(403);
      expect(await expired.text()).toContain('<Code>AccessDenied</Code><Message>Request has expired.</Message>');
      const unsigned = await fetch(up.oss.url + path);
      expect(unsigned.status).toBe(403);
      expect(await unsigned.text()).toContain('<Code>SignatureDoesNotMatch</Code>');
      const tampered = await fetch(up.oss.url + signUrl(path, 60).replace('Expires=', 'Expires=1'));
      expect(tampered.status).toBe(403);
    });

    it('expireSignedUrls fault: the redirect carries a link nginx refuses as expired', async () => {
      const blob = images[0]!.blobs[0]!;
      const fault = up.proxy.faults.add({ front: 'registry', method: 'GET', path: /\/blobs\//, kind: 'expireSignedUrls' });
      const blobUrl = `${up.registryUrl}/v2/${images[0]!.repo}/blobs/${blob.digest}`;
      const challenge = await fetch(blobUrl, { redirect: 'manual' });
      expect([challenge.status, fault.hits]).toEqual([401, 0]);
      const redirect = await fetch(blobUrl, {
        headers: { authorization: `Bearer ${await pullToken(up, images[0]!.repo)}` },
        redirect: 'manual',
      });
      expect([redirect.status, fault.hits]).toEqual([307, 1]);
      const location = redirect.headers.get('location') ?? '';
      expect(location.startsWith(`${up.proxy.ossUrl}/`)).toBe(true);
      const expired = await fetch(location);
      expect(expired.status).toBe(403);
      expect(await expired.text()).toContain('Request has expired.');
    });
  });

  describe('fault proxy', () => {
    const ossLink = (digest: string): string => up.proxy.ossUrl + signUrl(blobPath(digest), 60);
    const layer = (): BlobFile => images[0]!.blobs.find((b) => b.size > 512 * 1024)!;

    it('reset: a plain fetch fails mid-body after the given bytes', async () => {
      const blob = layer();
      const fault = up.proxy.faults.add({ front: 'oss', method: 'GET', path: /\/data$/, kind: 'reset', afterBytes: 100_000 });
      up.proxy.reset();
      const res = await fetch(ossLink(blob.digest));
      expect(res.status).toBe(200);
      expect(res.headers.get('content-length')).toBe(String(blob.size));
      await expect(res.arrayBuffer()).rejects.toThrow();
      expect(fault.hits).toBe(1);
      const served = up.proxy.filter({ front: 'oss', blob: blob.digest });
      expect(served.map((r) => [r.bytes, r.completed, r.faults])).toEqual([[100_000, false, ['reset']]]);

      const again = await fetch(ossLink(blob.digest));
      expect((await again.arrayBuffer()).byteLength).toBe(blob.size);
    });

    it('corrupt: same length, different bytes', async () => {
      const blob = layer();
      up.proxy.faults.add({ front: 'oss', path: /\/data$/, kind: 'corrupt', offset: 70_000, length: 3 });
      const body = Buffer.from(await (await fetch(ossLink(blob.digest))).arrayBuffer());
      const original = await readFile(blob.path);
      expect(body.length).toBe(original.length);
      expect(body.equals(original)).toBe(false);
      expect(body.subarray(0, 70_000).equals(original.subarray(0, 70_000))).toBe(true);
      expect(body[70_001]).toBe(original[70_001]! ^ 0xff);
    });

    it('status and delay, consumed in order and counted', async () => {
      const path = /^\/v2\/$/;
      up.proxy.faults.add({ front: 'registry', path, kind: 'status', status: 429, headers: { 'retry-after': '2' }, times: 2 });
      up.proxy.faults.add({ front: 'registry', path, kind: 'delay', ms: 300 });
      const timed = async (): Promise<[number, string | null, boolean]> => {
        const started = Date.now();
        const res = await fetch(`${up.registryUrl}/v2/`);
        await res.arrayBuffer();
        return [res.status, res.headers.get('retry-after'), Date.now() - started >= 290];
      };
      const answers = [];
      for (let i = 0; i < 4; i++) answers.push(await timed());
      expect(answers).toEqual([
        [429, '2', false],
        [429, '2', false],
        [401, null, true],
        [401, null, false],
      ]);
      expect(up.proxy.filter({ front: 'registry', path: '/v2/' }).slice(-4).map((r) => r.faults)).toEqual([
        ['status'],
        ['status'],
        ['delay'],
        [],
      ]);
    });
  });

  describe('token server', () => {
    it('refuses bad credentials, can refuse everyone and inject statuses', async () => {
      const ask = (password: string): Promise<Response> =>
        fetch(`${up.tokenServer.realm}?service=${up.service}&scope=repository:team/app:pull`, {
          headers: { authorization: `Basic ${Buffer.from(`${up.credentials.username}:${password}`).toString('base64')}` },
        });
      const bad = await ask('wrong');
      expect(bad.status).toBe(401);
      expect(await bad.json()).toMatchObject({ errors: [{ code: 'UNAUTHORIZED' }] });
      up.tokenServer.status(503, 1);
      expect((await ask(up.credentials.password)).status).toBe(503);
      up.tokenServer.refuseAll = true;
      expect((await ask(up.credentials.password)).status).toBe(401);
      up.tokenServer.refuseAll = false;
      const ok = await ask(up.credentials.password);
      expect(ok.status).toBe(200);
      expect(Object.keys(await ok.json()).sort()).toEqual(['access_token', 'expires_in', 'issued_at', 'token']);
      expect(up.tokenServer.requests.slice(-4).map((r) => r.status)).toEqual([401, 503, 401, 200]);
    });
  });

  it('stop() kills every process and removes the temp dir', async () => {
    const { pids, dir } = up;
    await up.stop();
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow(/ESRCH/);
    await expect(stat(dir)).rejects.toThrow(/ENOENT/);
  });
});

const hex = (digest: string): string => digest.slice('sha256:'.length);

/** Where Distribution's redirect points for a blob (the registry's storage path, served by nginx). */
const blobPath = (digest: string): string => `/docker/registry/v2/blobs/sha256/${hex(digest).slice(0, 2)}/${hex(digest)}/data`;

async function pullToken(up: Upstream, repo: string): Promise<string> {
  const res = await fetch(`${up.tokenServer.realm}?service=${up.service}&scope=repository:${repo}:pull`, {
    headers: { authorization: `Basic ${Buffer.from(`${up.credentials.username}:${up.credentials.password}`).toString('base64')}` },
  });
  return ((await res.json()) as { token: string }).token;
}
