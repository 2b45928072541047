// The mirror as a process in front of real Distribution (token auth, blob redirects to an expiring-link
// nginx "OSS"), pulled through with real skopeo; content compared byte for byte, upstream traffic counted.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltImage } from './harness/images.js';
import { expectCacheConsistent, expectSameImage, mirrorConfig } from './harness/mirror-check.js';
import { startMirror, type MirrorProcess } from './harness/mirror-process.js';
import { startUpstream, type Upstream } from './harness/upstream.js';

describe('pull through the mirror', () => {
  let up: Upstream;
  let mirror: MirrorProcess;
  let images: Record<'docker' | 'oci' | 'index' | 'list' | 'fanout', BuiltImage>;

  beforeAll(async () => {
    up = await startUpstream();
    const [docker, oci, index, list, fanout] = await Promise.all([
      up.pushImage({ kind: 'docker', repo: 'team/app', tag: 'v1', layers: [300_000, 2_000_000], seed: 's11' }),
      up.pushImage({ kind: 'oci', repo: 'team/oci-app', tag: '1.0', layers: [500_000], seed: 's12' }),
      up.pushImage({ kind: 'oci-index', repo: 'library/multi', tag: 'latest', layers: [400_000], seed: 's13' }),
      up.pushImage({ kind: 'docker-list', repo: 'team/legacy-multi', tag: 'v2', layers: [200_000], seed: 's14' }),
      up.pushImage({ kind: 'oci', repo: 'team/fanout', tag: 'cold', layers: [3_000_000, 1_000_000, 500_000], seed: 's15' }),
    ]);
    images = { docker, oci, index, list, fanout };
    mirror = await startMirror({ config: mirrorConfig(up), env: { ACR_PASSWORD: up.credentials.password } });
  });

  afterAll(async () => {
    await mirror?.stop();
    await up?.stop();
  });

  const copy = (image: BuiltImage, out: string, reference = `:${image.tag}`) =>
    up.skopeo(['copy', '--all', '--src-tls-verify=false', `docker://${mirror.host}/${image.repo}${reference}`, `dir:${out}`]);

  it('copies every kind of image byte-identical, and a second pull never reaches the upstream', async () => {
    for (const image of [images.docker, images.oci, images.index, images.list]) {
      const out = join(up.dir, `first-${image.kind}`);
      const r = await copy(image, out);
      expect(r.code, r.stderr).toBe(0);
      await expectSameImage(out, image);
    }
    // every blob went through OSS exactly once, without the registry's Authorization (layers fetched ahead
    // included); each is shorter than one fill segment, so the fill's bounded probe (206) is all of it
    for (const image of [images.docker, images.oci, images.index, images.list]) {
      for (const blob of image.blobs) {
        const downloads = up.proxy.filter({ front: 'oss', method: 'GET', blob: blob.digest });
        expect(downloads.map((d) => [d.status, d.authorization])).toEqual([[206, false]]);
      }
    }

    up.proxy.reset();
    for (const image of [images.docker, images.oci, images.index, images.list]) {
      const out = join(up.dir, `second-${image.kind}`);
      const r = await copy(image, out);
      expect(r.code, r.stderr).toBe(0);
      await expectSameImage(out, image);
      const byDigest = await copy(image, join(up.dir, `digest-${image.kind}`), `@${image.digest}`);
      expect(byDigest.code, byDigest.stderr).toBe(0);
    }
    expect(up.proxy.records.map((r) => `${r.front} ${r.method} ${r.path}`)).toEqual([]);
    await expectCacheConsistent(mirror.dataDir);
  });

  it('skopeo inspect through the mirror reports the upstream digest', async () => {
    const r = await up.skopeo(['inspect', '--tls-verify=false', `docker://${mirror.host}/${images.oci.repo}:${images.oci.tag}`]);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { Digest: string }).Digest).toBe(images.oci.digest);
  });

  it('ten concurrent cold pulls fetch each blob from the upstream exactly once', async () => {
    up.proxy.reset();
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => copy(images.fanout, join(up.dir, `fanout-${i}`))),
    );
    for (const [i, r] of results.entries()) {
      expect(r.code, r.stderr).toBe(0);
      await expectSameImage(join(up.dir, `fanout-${i}`), images.fanout);
    }
    for (const blob of images.fanout.blobs) {
      expect(up.proxy.count({ front: 'oss', method: 'GET', blob: blob.digest }), blob.digest).toBe(1);
    }
    const tokens = up.tokenServer.issued.filter((t) => t.user === up.credentials.username && JSON.stringify(t.access).includes('team/fanout'));
    expect(tokens.length).toBe(1);
  });

  it('HEAD of a cold manifest does not download its body', async () => {
    const image = await up.pushImage({ kind: 'oci', repo: 'team/head-only', tag: 'h1', layers: [1000], seed: 's16' });
    up.proxy.reset();
    const res = await fetch(`${mirror.url}/v2/${image.repo}/manifests/${image.tag}`, { method: 'HEAD', headers: { accept: image.mediaType } });
    expect(res.status).toBe(200);
    expect(res.headers.get('docker-content-digest')).toBe(image.digest);
    expect(res.headers.get('content-length')).toBe(String(image.manifest.length));
    expect(up.proxy.count({ front: 'registry', method: 'GET' })).toBe(0);
    expect(up.proxy.count({ front: 'registry', method: 'HEAD', path: /\/manifests\/h1$/ })).toBeGreaterThan(0);
  });

  it('serves Range requests for blobs as they are pulled through and once cached', async () => {
    const blob = images.docker.blobs.find((b) => b.size === 2_000_000) ?? images.docker.blobs.at(-1)!;
    const url = `${mirror.url}/v2/${images.docker.repo}/blobs/${blob.digest}`;
    const part = await fetch(url, { headers: { range: 'bytes=1000-1999' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 1000-1999/${blob.size}`);
    const { readFile } = await import('node:fs/promises');
    const original = await readFile(blob.path);
    expect(Buffer.from(await part.arrayBuffer()).equals(original.subarray(1000, 2000))).toBe(true);
    const beyond = await fetch(url, { headers: { range: `bytes=${blob.size}-` } });
    expect(beyond.status).toBe(416);
  });

  it('lists tags from the upstream with pagination', async () => {
    await Promise.all(['a', 'b', 'c'].map((t, i) => up.pushImage({ kind: 'oci', repo: 'team/tagged', tag: t, layers: [100], seed: `s${20 + i}` })));
    const all = await fetch(`${mirror.url}/v2/team/tagged/tags/list`);
    expect(await all.json()).toEqual({ name: 'team/tagged', tags: ['a', 'b', 'c'] });
    const page = await fetch(`${mirror.url}/v2/team/tagged/tags/list?n=2`);
    expect(await page.json()).toEqual({ name: 'team/tagged', tags: ['a', 'b'] });
    expect(page.headers.get('link')).toBe('</v2/team/tagged/tags/list?n=2&last=b>; rel="next"');
    const next = await fetch(`${mirror.url}/v2/team/tagged/tags/list?n=2&last=b`);
    expect(await next.json()).toEqual({ name: 'team/tagged', tags: ['c'] });
  });
});
