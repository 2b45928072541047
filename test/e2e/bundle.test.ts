// Moving images across an air gap: export from a connected mirror, import into an offline one, pull with
// skopeo from the offline one byte for byte. A corrupt or truncated bundle is refused and changes nothing.
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltImage } from './harness/images.js';
import { expectCacheConsistent, expectSameImage, mirrorConfig } from './harness/mirror-check.js';
import { startMirror, type MirrorProcess } from './harness/mirror-process.js';
import { run } from './harness/proc.js';
import { startUpstream, type Upstream } from './harness/upstream.js';

const MAIN = resolve(import.meta.dirname, '../../dist/main.js');
const TOKEN = 'bundle-test-admin-token-0123456789';

/** Runs the CLI against a mirror (asynchronously: the test upstream runs in this process); exit code and output. */
async function cli(mirror: MirrorProcess, args: string[]) {
  const r = await run(process.execPath, [MAIN, ...args], {
    timeoutMs: 60_000,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ACR_MIRROR_URL: mirror.url, ACR_MIRROR_ADMIN_TOKEN: TOKEN, NO_PROXY: '127.0.0.1' },
  });
  return { code: r.code, out: r.stdout, err: r.stderr };
}

/** Byte offsets of each entry's data in a tar (ustar headers, no extensions). */
function tarEntries(tar: Buffer): { name: string; offset: number; size: number }[] {
  const out: { name: string; offset: number; size: number }[] = [];
  for (let at = 0; at + 512 <= tar.length; ) {
    const name = tar.subarray(at, at + 100).toString('utf8').replace(/\0.*$/s, '');
    if (!name) break;
    const size = parseInt(tar.subarray(at + 124, at + 136).toString('utf8').replace(/\0.*$/s, '').trim() || '0', 8);
    out.push({ name, offset: at + 512, size });
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

describe('export and import bundles', () => {
  let up: Upstream;
  let online: MirrorProcess;
  let offline: MirrorProcess;
  let app: BuiltImage;
  let multi: BuiltImage;

  beforeAll(async () => {
    up = await startUpstream();
    [app, multi] = await Promise.all([
      up.pushImage({ kind: 'docker', repo: 'team/app', tag: 'v1', layers: [700_000, 300_000], seed: 'bundle-app' }),
      up.pushImage({ kind: 'oci-index', repo: 'library/multi', tag: '2.0', layers: [400_000], seed: 'bundle-multi' }),
    ]);
    online = await startMirror({ config: mirrorConfig(up), env: { ACR_PASSWORD: up.credentials.password, ACR_MIRROR_ADMIN_TOKEN: TOKEN } });
    // the air-gapped side: same routes, never contacts its upstream
    offline = await startMirror({ config: mirrorConfig(up, 'offline = true'), env: { ACR_PASSWORD: 'unused', ACR_MIRROR_ADMIN_TOKEN: TOKEN } });
  });
  afterAll(async () => {
    await online?.stop();
    await offline?.stop();
    await up?.stop();
  });

  it('exports (fetching what is missing), imports into an offline mirror, and skopeo pulls it byte for byte', async () => {
    const bundle = join(up.dir, 'bundle.tar');
    const exported = await cli(online, ['export', 'team/app:v1', 'library/multi:2.0', '-o', bundle]);
    expect(exported.code, exported.err).toBe(0);
    expect(exported.out).toMatch(/wrote .*bundle\.tar \(.*, 2 image\(s\)\)/);
    const indexDigest = /index\.json (sha256:[a-f0-9]{64})/.exec(exported.out)?.[1];
    expect(indexDigest, exported.out).toBeDefined();

    // a standard OCI layout: skopeo reads it directly (skopeo 1.9 only considers OCI-typed entries)
    const direct = join(up.dir, 'from-archive');
    const r = await up.skopeo(['copy', '--all', `oci-archive:${bundle}:library/multi:2.0`, `dir:${direct}`]);
    expect(r.code, r.stderr).toBe(0);
    await expectSameImage(direct, multi);

    up.proxy.reset();
    // the importer names what the bundle may add, and the index.json digest the exporter announced
    const unnamed = await cli(offline, ['import', bundle]);
    expect(unnamed.code).toBe(2); // a missing required option: a usage error
    expect(unnamed.err).toContain('name the repositories the bundle may add');
    const other = await cli(offline, ['import', bundle, '--name', 'team/app']);
    expect(other.code).toBe(1);
    expect(other.err).toContain('bundle rejected: it names library/multi, which this import may not add (allowed: team/app)');
    const wrong = await cli(offline, ['import', bundle, '--name', 'team/app,library/multi', '--expect-digest', `sha256:${'0'.repeat(64)}`]);
    expect(wrong.code).toBe(1);
    expect(wrong.err).toContain(`bundle rejected: its index.json is ${indexDigest}`);
    const imported = await cli(offline, ['import', bundle, '--name', 'team/app', '--name', 'library/multi', '--expect-digest', indexDigest!]);
    expect(imported.code, imported.err).toBe(0);
    expect(imported.out).toContain('imported team/app:v1, library/multi:2.0');
    expect(imported.out).toContain(`added     team/app:v1 -> ${app.digest}`);
    const again = await cli(offline, ['import', bundle, '--name', 'team/app', '--name', 'library/multi']);
    expect(again.code, again.err).toBe(0);
    expect(again.out).toContain(`unchanged library/multi:2.0 ${multi.digest}`);
    for (const image of [app, multi]) {
      const out = join(up.dir, `offline-${image.kind}`);
      const pulled = await up.skopeo(['copy', '--all', '--src-tls-verify=false', `docker://${offline.host}/${image.repo}:${image.tag}`, `dir:${out}`]);
      expect(pulled.code, pulled.stderr).toBe(0);
      await expectSameImage(out, image);
    }
    expect(up.proxy.records).toEqual([]); // the offline mirror never reached the upstream
    await expectCacheConsistent(offline.dataDir);
  });

  it('refuses a corrupt or truncated bundle, naming the problem, and leaves the cache as it was', async () => {
    const good = join(up.dir, 'good.tar');
    const ok = await cli(online, ['export', 'team/app:v1', '-o', good]);
    expect(ok.code, ok.err).toBe(0);
    const tar = await readFile(good);
    const blob = tarEntries(tar).filter((e) => e.name.startsWith('blobs/')).reduce((a, b) => (b.size > a.size ? b : a));
    const corrupt = Buffer.from(tar);
    corrupt[blob.offset + 1000] = corrupt[blob.offset + 1000]! ^ 0xff;
    await writeFile(join(up.dir, 'corrupt.tar'), corrupt);
    await writeFile(join(up.dir, 'truncated.tar'), tar.subarray(0, Math.floor(tar.length / 2)));

    const fresh = await startMirror({ config: mirrorConfig(up, 'offline = true'), env: { ACR_PASSWORD: 'unused', ACR_MIRROR_ADMIN_TOKEN: TOKEN } });
    try {
      const bad = await cli(fresh, ['import', join(up.dir, 'corrupt.tar'), '--name', 'team/app']);
      expect(bad.code).toBe(1);
      expect(bad.err).toContain(`bundle rejected: blob sha256:${blob.name.slice('blobs/sha256/'.length)} in the bundle does not match its digest`);
      const cut = await cli(fresh, ['import', join(up.dir, 'truncated.tar'), '--name', 'team/app']);
      expect(cut.code).toBe(1);
      expect(cut.err).toMatch(/bundle rejected: (the bundle is truncated|the bundle has no index.json|manifest .* is listed but not in the bundle|image .* needs blob)/);
      // blobs/sha256/ appears with the first commit: absent or empty, nothing was added
      expect(await readdir(join(fresh.dataDir, 'blobs', 'sha256')).catch(() => [])).toEqual([]);
      await expectCacheConsistent(fresh.dataDir);
      const res = await fetch(`${fresh.url}/v2/team/app/manifests/v1`);
      expect(res.status).toBe(503); // nothing was added: the offline mirror has no such tag
    } finally {
      await fresh.stop();
    }
  });
});
