// The cache directory filling up or turning read-only during fills: clients still get their blobs streamed
// from the upstream, nothing partial is committed, one error line is logged and the metric counts it.
// The cache lives on a small tmpfs mounted by the test (root only); elsewhere the test skips with the reason,
// except in CI (CI=true) and as root, where failing to mount is a failure.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltImage } from './harness/images.js';
import { blobCached, expectCacheConsistent, mirrorConfig } from './harness/mirror-check.js';
import { startMirror, type MirrorProcess } from './harness/mirror-process.js';
import { startUpstream, type Upstream } from './harness/upstream.js';
import { eventually } from '../support/eventually.js';

const MiB = 1024 * 1024;

describe('cache disk full or read-only', () => {
  let up: Upstream;
  let mirror: MirrorProcess;
  let image: BuiltImage;
  let dir: string;
  let mount: string;
  let unavailable = '';

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'acr-mirror-disk-'));
    mount = join(dir, 'data');
    await mkdir(mount);
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mount], { encoding: 'utf8' });
    if (r.status !== 0) {
      unavailable = `cannot mount a small tmpfs here: ${(r.stderr || r.error?.message || '').trim()}`;
      // in CI and as root the mount must work: a skip there would hide that these tests never ran
      if (process.env.CI === 'true' || process.getuid?.() === 0) throw new Error(unavailable);
      console.warn(`disk.test.ts skipped: ${unavailable}`);
      return;
    }
    up = await startUpstream();
    image = await up.pushImage({ kind: 'oci', repo: 'team/big', tag: 'v1', layers: [6 * MiB, 100_000], seed: 'disk-big' });
    mirror = await startMirror({ config: mirrorConfig(up), env: { ACR_PASSWORD: up.credentials.password }, dataDir: mount });
  });

  afterAll(async () => {
    await mirror?.stop();
    await up?.stop();
    if (!unavailable) spawnSync('umount', [mount]);
    await rm(dir, { recursive: true, force: true });
  });

  it('a blob larger than the free space is relayed in full to concurrent clients and not committed', async (ctx) => {
    if (unavailable) ctx.skip(unavailable);
    const layer = image.blobs.reduce((a, b) => (b.size > a.size ? b : a));
    const expected = await readFile(layer.path);
    up.proxy.reset();
    const bodies = await Promise.all(
      [0, 1, 2].map(() => fetch(`${mirror.url}/v2/${image.repo}/blobs/${layer.digest}`).then(async (r) => Buffer.from(await r.arrayBuffer()))),
    );
    for (const body of bodies) expect(body.equals(expected)).toBe(true);
    expect(await blobCached(mount, layer.digest)).toBe(false);
    expect(await readdir(join(mount, 'tmp'))).toEqual([]);
    await eventually(() => expect(mirror.logs()).toContain('blob relayed'));
    expect(mirror.logs().match(/cannot write the cache/g)).toHaveLength(1);
    const metrics = await (await fetch(`${mirror.url}/metrics`)).text();
    expect(metrics).toMatch(/acr_mirror_cache_write_errors_total\{code="ENOSPC"\} [1-9]/);
    expect(metrics).toMatch(/acr_mirror_fills_total\{result="relayed"\} [1-9]/);

    // the small layer still fits and is cached as usual
    const small = image.blobs.find((b) => b.size < MiB)!;
    const res = await fetch(`${mirror.url}/v2/${image.repo}/blobs/${small.digest}`);
    expect(Buffer.from(await res.arrayBuffer()).equals(await readFile(small.path))).toBe(true);
    await eventually(async () => expect(await blobCached(mount, small.digest)).toBe(true));
    await eventually(() => expect(mirror.logs()).toContain('cache writable again'));
    await expectCacheConsistent(mount);
  });

  it('a read-only cache directory still serves what it has and relays the rest', async (ctx) => {
    if (unavailable) ctx.skip(unavailable);
    const manifest = await fetch(`${mirror.url}/v2/${image.repo}/manifests/v1`);
    expect(manifest.status).toBe(200);
    const other = await up.pushImage({ kind: 'oci', repo: 'team/ro', tag: 'v1', layers: [500_000], seed: 'disk-ro' });
    // tmp/ (where fills write) read-only, as a bind mount over itself; the database stays writable
    const tmp = join(mount, 'tmp');
    execFileSync('mount', ['--bind', tmp, tmp]);
    execFileSync('mount', ['-o', 'remount,bind,ro', tmp]);
    try {
      const small = image.blobs.find((b) => b.size < MiB)!;
      const cachedBlob = await fetch(`${mirror.url}/v2/${image.repo}/blobs/${small.digest}`);
      expect(cachedBlob.headers.get('x-cache')).toBe('hit');
      expect(Buffer.from(await cachedBlob.arrayBuffer()).equals(await readFile(small.path))).toBe(true);

      const m = await fetch(`${mirror.url}/v2/${other.repo}/manifests/v1`);
      expect(m.status).toBe(200);
      expect(Buffer.from(await m.arrayBuffer()).equals(other.manifest)).toBe(true);
      const layer = other.blobs.reduce((a, b) => (b.size > a.size ? b : a));
      const b = await fetch(`${mirror.url}/v2/${other.repo}/blobs/${layer.digest}`);
      expect(b.status).toBe(200);
      expect(Buffer.from(await b.arrayBuffer()).equals(await readFile(layer.path))).toBe(true);
      expect(await blobCached(mount, layer.digest)).toBe(false);
      const metrics = await (await fetch(`${mirror.url}/metrics`)).text();
      expect(metrics).toMatch(/acr_mirror_cache_write_errors_total\{code="EROFS"\} [1-9]/);
    } finally {
      execFileSync('umount', [tmp]);
    }
  });
});
