// Failure paths a user would hit, against the real upstream with faults injected by the proxy in front of it.
// Each must end in a correct retry or a clear OCI error, and never leave a corrupt or partial blob in the cache.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlobFile, BuiltImage } from './harness/images.js';
import { blobCached, expectCacheConsistent, expectSameImage, mirrorConfig } from './harness/mirror-check.js';
import { startMirror, type MirrorProcess } from './harness/mirror-process.js';
import { freePort } from './harness/ports.js';
import { startUpstream, type Upstream } from './harness/upstream.js';
import { eventually } from '../support/eventually.js';

interface OciErrors {
  errors: { code: string; message: string }[];
}

describe('upstream faults', () => {
  let up: Upstream;
  let mirror: MirrorProcess;
  let image: BuiltImage;
  let layer: BlobFile;
  let seq = 0;

  beforeAll(async () => {
    up = await startUpstream({ tokenLifetimeSec: 2 });
    image = await up.pushImage({ kind: 'docker', repo: 'team/app', tag: 'v1', layers: [1_500_000, 300_000], seed: 's31' });
    layer = image.blobs.find((b) => b.size > 1_000_000)!;
    // These tests count the upstream requests behind one blob GET: no layers fetched ahead of it.
    mirror = await startMirror({ config: mirrorConfig(up, '', '[cache]\nprefetch = false'), env: { ACR_PASSWORD: up.credentials.password } });
    // learn the upstream's challenge, so faults below meet authenticated requests
    expect((await fetch(`${mirror.url}/v2/${image.repo}/manifests/${image.tag}`)).status).toBe(200);
  });

  afterAll(async () => {
    try {
      if (mirror) await expectCacheConsistent(mirror.dataDir);
    } finally {
      await mirror?.stop();
      await up?.stop();
    }
  });

  /** A fresh single-layer image, so each test starts cold. */
  const freshImage = (size = 400_000) =>
    up.pushImage({ kind: 'oci', repo: `team/fault-${++seq}`, tag: 't', layers: [size], seed: `s${100 + seq}` });
  const bigLayer = (img: BuiltImage) => img.blobs.reduce((a, b) => (b.size > a.size ? b : a));
  const blobUrl = (img: BuiltImage, blob: BlobFile) => `${mirror.url}/v2/${img.repo}/blobs/${blob.digest}`;

  it('resumes with Range after the connection to OSS is reset mid-blob', async () => {
    const img = await freshImage(1_200_000);
    const blob = bigLayer(img);
    up.proxy.reset();
    up.proxy.faults.add({ front: 'oss', method: 'GET', path: /\/data$/, kind: 'reset', afterBytes: 200_000 });
    const res = await fetch(blobUrl(img, blob));
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(await readFile(blob.path))).toBe(true);
    const downloads = up.proxy.filter({ front: 'oss', method: 'GET', blob: blob.digest });
    expect(downloads).toHaveLength(2);
    expect(downloads[0]!.bytes).toBe(200_000);
    expect(downloads[0]!.headers['user-agent']).toBe('acr-mirror');
    expect(downloads[0]!.headers.authorization).toBeUndefined();
    // resumed from the byte the mirror had received (bytes still in flight when the socket closed are lost)
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(String(downloads[1]!.headers.range))?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(200_000);
    expect(downloads[1]!.status).toBe(206);
    await eventually(async () => expect(await blobCached(mirror.dataDir, blob.digest)).toBe(true));
  });

  it('finishes and caches a fill when the client that started it disconnects', async () => {
    const img = await freshImage(3_000_000);
    const blob = bigLayer(img);
    up.proxy.reset();
    up.proxy.faults.add({ front: 'oss', method: 'GET', path: /\/data$/, kind: 'delay', ms: 300 });
    const abort = new AbortController();
    const res = await fetch(blobUrl(img, blob), { signal: abort.signal });
    const reader = res.body!.getReader();
    await reader.read();
    abort.abort();
    await eventually(async () => expect(await blobCached(mirror.dataDir, blob.digest)).toBe(true));
    expect(up.proxy.count({ front: 'oss', method: 'GET', blob: blob.digest })).toBe(1);
    const again = await fetch(blobUrl(img, blob));
    expect(again.headers.get('x-cache')).toBe('hit');
    expect(Buffer.from(await again.arrayBuffer()).equals(await readFile(blob.path))).toBe(true);
  });

  it('wrong bytes from upstream: the client is cut short, nothing is cached, the next pull is clean', async () => {
    const img = await freshImage(600_000);
    const blob = bigLayer(img);
    up.proxy.faults.add({ front: 'oss', method: 'GET', path: /\/data$/, kind: 'corrupt', offset: 1000, length: 4 });
    const res = await fetch(blobUrl(img, blob));
    expect(res.status).toBe(200);
    await expect(res.arrayBuffer()).rejects.toThrow();
    await eventually(() => expect(mirror.logs()).toContain(`does not match its digest ${blob.digest}`));
    expect(await blobCached(mirror.dataDir, blob.digest)).toBe(false);

    up.proxy.faults.add({ front: 'oss', method: 'GET', path: /\/data$/, kind: 'corrupt', offset: 10 });
    const failed = await up.skopeo(['copy', '--src-tls-verify=false', `docker://${mirror.host}/${img.repo}:t`, `dir:${join(up.dir, `corrupt-${seq}`)}`]);
    expect(failed.code).not.toBe(0);
    const ok = await up.skopeo(['copy', '--src-tls-verify=false', `docker://${mirror.host}/${img.repo}:t`, `dir:${join(up.dir, `clean-${seq}`)}`]);
    expect(ok.code, ok.stderr).toBe(0);
    await expectSameImage(join(up.dir, `clean-${seq}`), img);
  });

  it('asks the registry for a fresh link when the signed OSS URL has expired', async () => {
    const img = await freshImage();
    const blob = bigLayer(img);
    up.proxy.reset();
    up.proxy.faults.add({ front: 'registry', method: 'GET', path: /\/blobs\//, kind: 'expireSignedUrls' });
    const res = await fetch(blobUrl(img, blob));
    expect(Buffer.from(await res.arrayBuffer()).equals(await readFile(blob.path))).toBe(true);
    // The fill probes with a bounded Range; the blob is shorter than one segment, so the 206 is all of it.
    expect(up.proxy.filter({ front: 'oss', method: 'GET', blob: blob.digest }).map((r) => r.status)).toEqual([403, 206]);
    expect(up.proxy.filter({ front: 'registry', method: 'GET', blob: blob.digest }).filter((r) => r.authorization)).toHaveLength(2);
  });

  it('renews a token when it expires and refreshes once when the registry refuses one', async () => {
    const img = await freshImage(1000);
    const mine = () => up.tokenServer.issued.filter((t) => t.user === up.credentials.username && JSON.stringify(t.access).includes(img.repo));
    expect((await fetch(`${mirror.url}/v2/${img.repo}/manifests/t`)).status).toBe(200);
    expect(mine()).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 1500)); // lifetime 2 s, renewed at half-life
    expect((await fetch(`${mirror.url}/v2/${img.repo}/manifests/${img.digest}`)).status).toBe(200);
    expect(mine()).toHaveLength(1); // by digest: served from cache, no token needed

    const challenge = `Bearer realm="${up.tokenServer.realm}",service="${up.service}",scope="repository:${img.repo}:pull",error="invalid_token"`;
    up.proxy.faults.add({ front: 'registry', method: 'GET', path: /\/blobs\//, kind: 'status', status: 401, headers: { 'www-authenticate': challenge } });
    const blob = bigLayer(img);
    const res = await fetch(blobUrl(img, blob));
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(await readFile(blob.path))).toBe(true);
    expect(mine().length).toBe(3);
  });

  it('honours Retry-After on 429, and fails fast with 503 when the wait is too long', async () => {
    const img = await freshImage(1000);
    up.proxy.reset();
    up.proxy.faults.add({ front: 'registry', method: 'GET', path: /\/manifests\/t$/, kind: 'status', status: 429, headers: { 'retry-after': '1' } });
    const started = Date.now();
    const ok = await fetch(`${mirror.url}/v2/${img.repo}/manifests/t`);
    expect(ok.status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(up.proxy.count({ front: 'registry', method: 'GET', path: /\/manifests\/t$/, status: 429 })).toBe(1);

    const other = await freshImage(1000);
    up.proxy.faults.add({ front: 'registry', method: 'GET', path: /\/manifests\/t$/, kind: 'status', status: 429, headers: { 'retry-after': '600' } });
    const limited = await fetch(`${mirror.url}/v2/${other.repo}/manifests/t`);
    expect(limited.status).toBe(503);
    expect(limited.headers.get('retry-after')).toBe('600');
    const body = (await limited.json()) as OciErrors;
    expect(body.errors[0]!.message).toContain(`upstream acr (${up.registryHost}): GET manifest ${other.repo}:t was rate limited (429)`);
  });

  it('retries 5xx, then answers 502 naming the upstream when they persist', async () => {
    const img = await freshImage(1000);
    up.proxy.faults.add({ front: 'registry', method: 'GET', path: /\/manifests\/t$/, kind: 'status', status: 503, times: 2 });
    expect((await fetch(`${mirror.url}/v2/${img.repo}/manifests/t`)).status).toBe(200);

    const other = await freshImage(1000);
    up.proxy.reset();
    up.proxy.faults.add({ front: 'registry', method: 'GET', path: /\/manifests\/t$/, kind: 'status', status: 500, times: Infinity });
    const res = await fetch(`${mirror.url}/v2/${other.repo}/manifests/t`);
    up.proxy.faults.clear();
    expect(res.status).toBe(502);
    expect(((await res.json()) as OciErrors).errors[0]).toEqual({
      code: 'UNAVAILABLE',
      message: `upstream acr (${up.registryHost}): GET manifest ${other.repo}:t failed with 500`,
    });
    expect(up.proxy.count({ front: 'registry', method: 'GET', path: /\/manifests\/t$/ })).toBe(4);
  });

  it('404s from the upstream are MANIFEST_UNKNOWN and BLOB_UNKNOWN', async () => {
    const tag = await fetch(`${mirror.url}/v2/${image.repo}/manifests/no-such-tag`);
    expect(tag.status).toBe(404);
    expect(((await tag.json()) as OciErrors).errors[0]!.code).toBe('MANIFEST_UNKNOWN');
    const blob = await fetch(`${mirror.url}/v2/${image.repo}/blobs/sha256:${'ab'.repeat(32)}`);
    expect(blob.status).toBe(404);
    expect(((await blob.json()) as OciErrors).errors[0]!.code).toBe('BLOB_UNKNOWN');
  });

  it('rejects writes and malformed requests without contacting the upstream', async () => {
    up.proxy.reset();
    for (const method of ['PUT', 'POST', 'PATCH', 'DELETE']) {
      const res = await fetch(`${mirror.url}/v2/${image.repo}/manifests/v1`, { method, body: method === 'DELETE' ? null : '{}' });
      expect(res.status, method).toBe(405);
      expect(((await res.json()) as OciErrors).errors[0]!.code).toBe('UNSUPPORTED');
    }
    const uploads = await fetch(`${mirror.url}/v2/${image.repo}/blobs/uploads/`, { method: 'POST' });
    expect(uploads.status).toBe(405);
    const cases: [string, number, string][] = [
      ['/v2/Team/App/manifests/v1', 400, 'NAME_INVALID'],
      ['/v2/team/%2Fapp/manifests/v1', 400, 'NAME_INVALID'],
      // URL parsing resolves dot segments (also encoded ones) before routing: this is /v2/manifests/v1
      ['/v2/team/%2e%2e/manifests/v1', 404, 'NOT_FOUND'],
      ['/v2/team//app/manifests/v1', 400, 'NAME_INVALID'],
      [`/v2/${'a/'.repeat(5000)}b/manifests/v1`, 400, 'NAME_INVALID'],
      // a reference that can name no manifest is an unknown manifest (distribution-spec conformance)
      ['/v2/team/app/manifests/-bad', 404, 'MANIFEST_UNKNOWN'],
      ['/v2/team/app/manifests/sha256:1234', 404, 'MANIFEST_UNKNOWN'],
      ['/v2/team/app/blobs/sha512:' + 'a'.repeat(128), 400, 'DIGEST_INVALID'],
      ['/v2/team/app/blobs/sha256:' + 'A'.repeat(64), 400, 'DIGEST_INVALID'],
      ['/v2/team/app/nonsense', 404, 'NOT_FOUND'],
    ];
    for (const [path, status, code] of cases) {
      const res = await fetch(mirror.url + path);
      expect(res.status, path).toBe(status);
      expect(((await res.json()) as OciErrors).errors[0]!.code, path).toBe(code);
    }
    expect(up.proxy.records).toEqual([]);
  });
});

describe('upstream unreachable or refusing the mirror', () => {
  it('an upstream that is down gives 503 naming it and the cause', async () => {
    const port = await freePort();
    const mirror = await startMirror({
      config: mirrorConfig({ registryUrl: `http://127.0.0.1:${port}`, credentials: { username: 'u', password: '' } }, 'retries = 1'),
      env: { ACR_PASSWORD: 'unused-secret' },
    });
    try {
      const res = await fetch(`${mirror.url}/v2/team/app/manifests/v1`);
      expect(res.status).toBe(503);
      expect(((await res.json()) as OciErrors).errors[0]).toEqual({
        code: 'UNAVAILABLE',
        message: `upstream acr (127.0.0.1:${port}): GET manifest team/app:v1 failed: connection refused`,
      });
      const blob = await fetch(`${mirror.url}/v2/team/app/blobs/sha256:${'cd'.repeat(32)}`);
      expect(blob.status).toBe(503);
    } finally {
      await mirror.stop();
    }
  });

  it('wrong credentials give 502 naming the token service and user; the password appears nowhere', async () => {
    const up = await startUpstream();
    const mirror = await startMirror({ config: mirrorConfig(up), env: { ACR_PASSWORD: 'wrong-password-xyz' } });
    try {
      const img = await up.pushImage({ kind: 'oci', repo: 'team/private', tag: 'v1', layers: [1000], seed: 's41' });
      const res = await fetch(`${mirror.url}/v2/${img.repo}/manifests/v1`);
      expect(res.status).toBe(502);
      const text = await res.text();
      const realmHost = new URL(up.tokenServer.realm).host;
      expect(JSON.parse(text)).toEqual({
        errors: [
          {
            code: 'UNAVAILABLE',
            message: `upstream acr (${up.registryHost}), token service ${realmHost} rejected the credentials of user mirror (401)`,
          },
        ],
      });
      const blob = await fetch(`${mirror.url}/v2/${img.repo}/blobs/${img.blobs[0]!.digest}`);
      expect(blob.status).toBe(502);
      expect(text + mirror.logs()).not.toContain('wrong-password-xyz');
      await expectCacheConsistent(mirror.dataDir);
      expect(await blobCached(mirror.dataDir, img.blobs[0]!.digest)).toBe(false);
    } finally {
      await mirror.stop();
      await up.stop();
    }
  });
});
