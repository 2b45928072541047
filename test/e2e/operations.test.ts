// What an operator relies on: SIGTERM drains running downloads and exits 0; logs never carry secrets;
// /metrics, /healthz and /readyz answer on the running process.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltImage } from './harness/images.js';
import { blobCached, expectCacheConsistent, expectSameImage, mirrorConfig } from './harness/mirror-check.js';
import { startMirror } from './harness/mirror-process.js';
import { startUpstream, type Upstream } from './harness/upstream.js';
import { eventually } from '../support/eventually.js';

describe('operations', () => {
  let up: Upstream;
  let image: BuiltImage;
  let dataDir: string;

  beforeAll(async () => {
    up = await startUpstream();
    image = await up.pushImage({ kind: 'docker', repo: 'team/ops', tag: 'v1', layers: [8_000_000, 200_000], seed: 's61' });
    dataDir = await mkdtemp(join(tmpdir(), 'acr-mirror-ops-'));
  });
  afterAll(async () => {
    await up?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('on SIGTERM stops accepting, finishes the running download, commits it and exits 0', async () => {
    const mirror = await startMirror({ config: mirrorConfig(up), env: { ACR_PASSWORD: up.credentials.password }, dataDir: join(dataDir, 'drain') });
    const layer = image.blobs.reduce((a, b) => (b.size > a.size ? b : a));
    up.proxy.faults.add({ front: 'oss', method: 'GET', path: /\/data$/, kind: 'delay', ms: 800 });
    const download = fetch(`${mirror.url}/v2/${image.repo}/blobs/${layer.digest}`).then(async (r) => ({
      status: r.status,
      body: Buffer.from(await r.arrayBuffer()),
    }));
    // SIGTERM while the fill waits on the slow (800 ms) OSS response
    await eventually(() => expect(up.proxy.count({ front: 'oss', method: 'GET', blob: layer.digest })).toBe(1), { message: 'the fill reached OSS' });
    const exited = mirror.stop();
    await eventually(() => expect(fetch(`${mirror.url}/v2/`)).rejects.toThrow(), { timeoutMs: 400, message: 'still accepting after SIGTERM' });
    const { status, body } = await download;
    expect(status).toBe(200);
    expect(body.equals(await readFile(layer.path))).toBe(true);
    expect(await exited).toBe(0);
    expect(await blobCached(join(dataDir, 'drain'), layer.digest)).toBe(true);
    expect(mirror.logs()).toContain('"msg":"stopped"');
    await expectCacheConsistent(join(dataDir, 'drain'));
  });

  it('serves /healthz, /readyz and /metrics on the running process', async () => {
    // Without prefetch the pull's first blob GETs are misses the metrics must show (with it, joins or hits by timing).
    const mirror = await startMirror({ config: mirrorConfig(up, '', '[cache]\nprefetch = false'), env: { ACR_PASSWORD: up.credentials.password } });
    try {
      expect((await fetch(`${mirror.url}/healthz`)).status).toBe(200);
      const ready = await fetch(`${mirror.url}/readyz`);
      expect(ready.status).toBe(200);
      const out = join(up.dir, 'ops-copy');
      const r = await up.skopeo(['copy', '--src-tls-verify=false', `docker://${mirror.host}/${image.repo}:v1`, `dir:${out}`]);
      expect(r.code, r.stderr).toBe(0);
      await expectSameImage(out, image);
      // A cached blob is written straight to the socket: its headers, range and log line must still be right.
      const layer = image.blobs.reduce((a, b) => (b.size > a.size ? b : a));
      const ranged = await fetch(`${mirror.url}/v2/${image.repo}/blobs/${layer.digest}`, { headers: { range: 'bytes=1000-1999', 'x-request-id': 'ops-range-1' } });
      expect(ranged.status).toBe(206);
      expect(ranged.headers.get('x-request-id')).toBe('ops-range-1');
      expect(ranged.headers.get('content-range')).toBe(`bytes 1000-1999/${layer.size}`);
      expect(ranged.headers.get('x-cache')).toBe('hit');
      expect(Buffer.from(await ranged.arrayBuffer()).equals((await readFile(layer.path)).subarray(1000, 2000))).toBe(true);
      const line = mirror.logs().split('\n').find((l) => l.includes('"requestId":"ops-range-1"'));
      expect(JSON.parse(line!)).toMatchObject({ status: 206, cache: 'hit', ref: layer.digest, upstream: 'acr' });
      const blobHead = await fetch(`${mirror.url}/v2/${image.repo}/blobs/${layer.digest}`, { method: 'HEAD', headers: { 'x-request-id': 'ops-blob-head' } });
      expect(blobHead.status).toBe(200);
      expect(blobHead.headers.get('x-request-id')).toBe('ops-blob-head');
      expect(blobHead.headers.get('content-length')).toBe(String(layer.size));
      expect(blobHead.headers.get('docker-content-digest')).toBe(layer.digest);
      expect(blobHead.headers.get('x-cache')).toBe('hit');
      // Manifests are written straight to the socket on GET; on HEAD the headers are set on the Node response and
      // the status goes through hono's HEAD handling: both must carry the same headers.
      for (const method of ['GET', 'HEAD']) {
        const res = await fetch(`${mirror.url}/v2/${image.repo}/manifests/v1`, { method, headers: { accept: image.mediaType, 'x-request-id': `ops-manifest-${method}` } });
        expect(res.status).toBe(200);
        expect(res.headers.get('x-request-id')).toBe(`ops-manifest-${method}`);
        expect(res.headers.get('docker-content-digest')).toBe(image.digest);
        expect(res.headers.get('content-type')).toBe(image.mediaType);
        expect(res.headers.get('content-length')).toBe(String(image.manifest.length));
        expect(res.headers.get('x-cache')).toBe('hit');
        const body = Buffer.from(await res.arrayBuffer());
        expect(body.equals(method === 'GET' ? image.manifest : Buffer.alloc(0))).toBe(true);
      }
      const metrics = await (await fetch(`${mirror.url}/metrics`)).text();
      expect(metrics).toMatch(/acr_mirror_http_requests_total\{route="blob",method="GET",status="206"\} 1\n/);
      expect(metrics).toMatch(/acr_mirror_cache_requests_total\{kind="blob",outcome="hit"\} [1-9]/);
      expect(metrics).toMatch(/acr_mirror_cache_requests_total\{kind="blob",outcome="miss"\} [1-9]/);
      expect(metrics).toMatch(/acr_mirror_upstream_bytes_total\{upstream="acr",kind="blob"\} [1-9]/);
      expect(metrics).toContain('acr_mirror_process_resident_memory_bytes');
    } finally {
      await mirror.stop();
    }
  });

  it('logs of a full run carry no password, token or signed-URL signature', async () => {
    const mirror = await startMirror({ config: mirrorConfig(up), env: { ACR_PASSWORD: up.credentials.password } });
    let logs = '';
    try {
      const other = await up.pushImage({ kind: 'oci-index', repo: 'team/logs', tag: 'v1', layers: [100_000], seed: 's62' });
      const r = await up.skopeo(['copy', '--all', '--src-tls-verify=false', `docker://${mirror.host}/${other.repo}:v1`, `dir:${join(up.dir, 'logs-copy')}`]);
      expect(r.code, r.stderr).toBe(0);
      up.proxy.faults.add({ front: 'registry', method: 'GET', path: /\/blobs\//, kind: 'expireSignedUrls' });
      up.proxy.faults.add({ front: 'oss', method: 'GET', path: /\/data$/, kind: 'corrupt' });
      await fetch(`${mirror.url}/v2/${image.repo}/blobs/${image.blobs[0]!.digest}`).then((res) => res.arrayBuffer()).catch(() => undefined);
      await fetch(`${mirror.url}/v2/${image.repo}/blobs/${image.blobs[1]!.digest}`).then((res) => res.arrayBuffer()).catch(() => undefined);
    } finally {
      await mirror.stop();
      logs = mirror.logs();
    }
    const requests = logs
      .split('\n')
      .filter((l) => l.includes('"msg":"request"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const blobLine = requests.find((r) => r.ref === image.blobs[0]!.digest);
    expect(blobLine).toMatchObject({ repo: image.repo, upstream: 'acr', method: 'GET', cache: 'miss' });
    expect(typeof blobLine!.requestId).toBe('string');
    expect(typeof blobLine!.ms).toBe('number');
    expect(requests.some((r) => r.repo === 'team/logs' && r.ref === 'v1' && r.cache === 'miss')).toBe(true);
    expect(logs).toContain('blob fill failed');
    const tokens = up.tokenServer.issued.filter((t) => t.user === up.credentials.username).map((t) => t.token);
    expect(tokens.length).toBeGreaterThan(0);
    expect(logs).not.toContain(up.credentials.password);
    for (const token of tokens) expect(logs).not.toContain(token);
    expect(logs).not.toContain('Signature=');
    expect(logs.toLowerCase()).not.toContain('authorization":"');
  });
});
