// An imported bundle may come from anywhere: its entries are checked before they cost the mirror file
// descriptors, disk or memory, and a refused bundle leaves nothing staged behind.
import { readdirSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { importBundle } from '../../src/bundle/import.js';
import type { BlobWriter } from '../../src/cache/blob-store.js';
import { openCacheDatabase } from '../../src/cache/cache.js';
import { ManifestStore } from '../../src/cache/manifest-store.js';
import { MemoryBlobStore } from '../../src/cache/memory-blob-store.js';
import type { UpstreamTarget } from '../../src/proxy/target.js';
import { ADMIN_ENV, bearer } from '../support/admin.js';
import { blobEntry, bundleEntries, imageIndex, LAYOUT } from '../support/bundle-tar.js';
import { FakeUpstream, makeImage, sha256 } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';
import { tarOf, type TarEntry } from '../support/tar.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const done of cleanup.splice(0)) await done();
});

async function mirror(): Promise<TestMirror> {
  const m = await startTestMirror(new FakeUpstream(), { env: ADMIN_ENV });
  cleanup.push(() => m.close());
  return m;
}

async function importTar(m: TestMirror, tar: Buffer | Readable): Promise<{ status: number; body: any }> {
  const body = tar instanceof Readable ? (Readable.toWeb(tar) as ReadableStream) : new Uint8Array(tar);
  const res = await m.request('/admin/import?names=team/app', { method: 'POST', headers: bearer(), body, duplex: 'half' } as RequestInit);
  return { status: res.status, body: await res.json() };
}

async function expectNothingStaged(m: TestMirror): Promise<void> {
  expect(await readdir(join(m.dir, 'data', 'tmp'))).toEqual([]);
  expect(await readdir(join(m.dir, 'data', 'blobs', 'sha256')).catch(() => [])).toEqual([]);
}

/** importBundle over a memory store that counts the bytes its writers were given. */
async function directImport(entries: TarEntry[], opts: { maxBytes?: number; maxEntries?: number } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'acr-mirror-bundle-'));
  const db = await openCacheDatabase(dir);
  cleanup.push(async () => {
    db.close();
    await rm(dir, { recursive: true, force: true });
  });
  const store = new MemoryBlobStore();
  let written = 0;
  const createWriter = store.createWriter.bind(store);
  store.createWriter = async (digest: string): Promise<BlobWriter> => {
    const writer = await createWriter(digest);
    const write = writer.write.bind(writer);
    writer.write = async (offset, bytes) => {
      written += (Array.isArray(bytes) ? Buffer.concat(bytes) : bytes).length;
      await write(offset, bytes);
    };
    return writer;
  };
  const deps = {
    route: (name: string) => ({ client: { name: 'acr' }, repo: name }) as unknown as UpstreamTarget,
    manifestStore: new ManifestStore(db, Date.now),
    blobStore: store,
    maxBytes: opts.maxBytes ?? null,
  };
  const limits = opts.maxEntries ? { maxEntries: opts.maxEntries } : {};
  const result = await importBundle(deps, Readable.from(await tarOf(entries)), { names: ['team/app'], replace: false, limits }).then(
    () => null,
    (err: Error) => err,
  );
  return { error: result, written: () => written, store };
}

describe('bundle import resources', () => {
  it('refuses a duplicate blob entry and leaves nothing in tmp/ or blobs/', async () => {
    const m = await mirror();
    const image = makeImage('team/app', '1.2', [2000], 11);
    const layer = [...image.blobs.values()][1]!;
    const res = await importTar(m, await tarOf([...bundleEntries([{ name: 'team/app:1.2', image }]), blobEntry(layer)]));
    expect(res.status).toBe(400);
    expect(res.body.errors[0].message).toBe(`bundle rejected: blob ${sha256(layer)} is in the bundle twice`);
    await expectNothingStaged(m);
  });

  it('refuses an entry that is not a regular file', async () => {
    const m = await mirror();
    const image = makeImage('team/app', '1.2', [2000], 12);
    const link: TarEntry = [`blobs/sha256/${'a'.repeat(64)}`, '/etc/passwd', 'symlink'];
    const res = await importTar(m, await tarOf([...bundleEntries([{ name: 'team/app:1.2', image }]), link]));
    expect(res.status).toBe(400);
    expect(res.body.errors[0].message).toBe(`bundle rejected: entry blobs/sha256/${'a'.repeat(64)} is a symlink, not a regular file`);
    await expectNothingStaged(m);
  });

  it('imports 1,200 blobs without holding a file descriptor for each', async () => {
    const m = await mirror();
    const layers = Array.from({ length: 1200 }, (_, i) => Buffer.from(`layer ${i}`));
    const config = Buffer.from('{"os":"linux","architecture":"amd64"}');
    const descriptor = (b: Buffer) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(b), size: b.length });
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: descriptor(config), layers: layers.map(descriptor) }));
    const image = { repo: 'team/app', tag: 'many', manifest: body, manifestDigest: sha256(body), mediaType: 'application/vnd.oci.image.manifest.v1+json', blobs: new Map() };
    const tar = await tarOf([LAYOUT, imageIndex([{ name: 'team/app:many', image }]), blobEntry(body), blobEntry(config), ...layers.map(blobEntry)]);
    const openFds = () => readdirSync('/proc/self/fd').length;
    const baseline = openFds();
    let most = 0;
    // the tar arrives in small pieces; between pieces the import has staged the blobs before them
    const pieces = async function* () {
      for (let at = 0; at < tar.length; at += 4096) {
        most = Math.max(most, openFds() - baseline);
        yield tar.subarray(at, at + 4096);
      }
      most = Math.max(most, openFds() - baseline);
    };
    const res = await importTar(m, Readable.from(pieces()));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.blobs).toBe(1201);
    expect(most).toBeLessThan(50);
  });

  it('refuses a manifest larger than 4 MiB without reading it', async () => {
    const m = await mirror();
    const config = Buffer.from('{}');
    const big = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: 2 },
        layers: [],
        annotations: { padding: 'x'.repeat(4 * 1024 * 1024) },
      }),
    );
    const image = { repo: 'team/app', tag: 'big', manifest: big, manifestDigest: sha256(big), mediaType: 'application/vnd.oci.image.manifest.v1+json', blobs: new Map([[sha256(config), config]]) };
    const res = await importTar(m, await tarOf(bundleEntries([{ name: 'team/app:big', image }])));
    expect(res.status).toBe(400);
    expect(res.body.errors[0].message).toBe(`bundle rejected: manifest ${sha256(big)} is ${big.length} bytes, more than the 4194304 byte limit`);
    await expectNothingStaged(m);
  });

  it('refuses a bundle larger than storage.max_size before writing any of it', async () => {
    const image = makeImage('team/app', '1.2', [600_000], 13);
    const [layer] = [...image.blobs.values()].filter((b) => b.length === 600_000);
    const { error, written, store } = await directImport([LAYOUT, imageIndex([{ name: 'team/app:1.2', image }]), blobEntry(layer!), blobEntry(image.manifest)], { maxBytes: 500_000 });
    expect(error?.message).toBe(`bundle rejected: its blobs need at least 600000 bytes (${sha256(layer!)}), more than storage.max_size (500000 bytes) even after eviction`);
    expect(written()).toBe(0);
    expect(store.pending.size).toBe(0);
  });

  it('refuses the entry that takes the bundle over storage.max_size before writing that entry', async () => {
    const image = makeImage('team/app', '1.2', [300_000, 300_000], 14);
    const { error, written } = await directImport(bundleEntries([{ name: 'team/app:1.2', image }]), { maxBytes: 500_000 });
    expect(error?.message).toMatch(/^bundle rejected: its blobs need at least 60\d+ bytes \(sha256:[a-f0-9]{64}\), more than storage.max_size \(500000 bytes\) even after eviction$/);
    expect(written()).toBeLessThan(500_000);
  });

  it('caps the number of entries', async () => {
    const image = makeImage('team/app', '1.2', [100], 15);
    const { error } = await directImport(bundleEntries([{ name: 'team/app:1.2', image }]), { maxEntries: 3 });
    expect(error?.message).toBe('bundle rejected: it has more than 3 entries');
  });
});
