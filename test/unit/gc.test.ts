import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { openDatabase } from '../../src/cache/db.js';
import { openBlobStore } from '../../src/cache/cache.js';
import { ManifestStore } from '../../src/cache/manifest-store.js';
import { reconcile } from '../../src/cache/reconcile.js';
import { gcCounts } from '../../src/cache/gc.js';
import { gcCommand } from '../../src/cli/gc.js';
import { parseConfig } from '../../src/config/load.js';
import { FakeUpstream, makeArtifact, makeImage, makeIndex, randomBlob, sha256, type FakeImage } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';

let m: TestMirror | undefined;
afterEach(async () => {
  await m?.close();
  m = undefined;
});

const DAY = 86_400_000;

/** A cache directory holding the given images, pulled at `at`, with the mirror closed afterwards. */
async function cacheWith(images: FakeImage[], at: number, byDigestOnly: FakeImage[] = [], alsoGet: string[] = []): Promise<string> {
  const fake = new FakeUpstream();
  for (const i of [...images, ...byDigestOnly]) fake.add(i);
  m = await startTestMirror(fake, { now: () => at });
  for (const img of images) await (await m.request(`/v2/${img.repo}/manifests/${img.tag}`)).arrayBuffer();
  for (const img of byDigestOnly) await (await m.request(`/v2/${img.repo}/manifests/${img.manifestDigest}`)).arrayBuffer();
  for (const img of [...images, ...byDigestOnly]) for (const d of img.blobs.keys()) await (await m.request(`/v2/${img.repo}/blobs/${d}`)).arrayBuffer();
  for (const path of alsoGet) expect((await m.request(path)).status).toBe(200);
  await m.mirror.fills.settled();
  await m.mirror.close();
  const dir = join(m.dir, 'data');
  m = { ...m, close: () => rm(m!.dir, { recursive: true, force: true }) } as TestMirror;
  return dir;
}

/** Every file under dir with its size and modification time. */
async function listTree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return Promise.all(entries.sort().map(async (e) => `${e} ${(await stat(join(dir, e))).size} ${(await stat(join(dir, e))).mtimeMs}`));
}
const blobFile = (dir: string, d: string) => join(dir, 'blobs', 'sha256', d.slice(7, 9), d.slice(7));
const configFor = (dir: string) => parseConfig({ storage: { dir } }, { env: {}, baseDir: '/', source: 'test' });
const sink = () => {
  const lines: string[] = [];
  return { out: { write: (s: string) => lines.push(s) } as unknown as NodeJS.WritableStream, lines };
};

describe('reconcile at start-up', () => {
  it('drops rows without files (and the manifests leading to them), adopts valid files, removes invalid ones', async () => {
    const a = makeImage('team/a', 'v1', [1000], 1);
    const dir = await cacheWith([a], Date.now());
    const [layer] = [...a.blobs.entries()].find(([, b]) => b.length === 1000)!;
    await rm(blobFile(dir, layer));
    const stray = randomBlob(500, 42);
    const strayDigest = sha256(stray);
    await mkdir(join(dir, 'blobs', 'sha256', strayDigest.slice(7, 9)), { recursive: true });
    await writeFile(blobFile(dir, strayDigest), stray);
    const liar = `sha256:${'ab'.repeat(32)}`;
    await mkdir(join(dir, 'blobs', 'sha256', 'ab'), { recursive: true });
    await writeFile(blobFile(dir, liar), 'not what the name says');

    const db = openDatabase(join(dir, 'mirror.db'));
    try {
      const { store, index } = openBlobStore(dir, db, Date.now);
      const report = await reconcile(index, store, new ManifestStore(db, Date.now), pino({ level: 'silent' }));
      expect(report).toEqual({ droppedRows: 1, adopted: 1, removed: 1 });
      expect(db.prepare('SELECT count(*) AS n FROM tags').get()).toEqual({ n: 0 });
      expect(db.prepare('SELECT count(*) AS n FROM manifests WHERE digest = ?').get(a.manifestDigest)).toEqual({ n: 0 });
      expect(db.prepare('SELECT size FROM blobs WHERE digest = ?').get(strayDigest)).toEqual({ size: 500 });
      expect(existsSync(blobFile(dir, liar))).toBe(false);
      // a second run finds nothing to do
      expect(await reconcile(index, store, new ManifestStore(db, Date.now), pino({ level: 'silent' }))).toEqual({ droppedRows: 0, adopted: 0, removed: 0 });
    } finally {
      db.close();
    }
  });
});

describe('acr-mirror gc', () => {
  it('removes untagged manifests and unreferenced blobs past the grace period, and stale temp files; --dry-run removes nothing', async () => {
    const tagged = makeImage('team/tagged', 'v1', [1000], 1);
    const digestOnly = makeImage('team/pinned', 'unused', [2000], 2);
    const dir = await cacheWith([tagged], Date.now() - 3 * DAY, [digestOnly]);
    const tmpFile = join(dir, 'tmp', 'sha256-dead.abc');
    await writeFile(tmpFile, Buffer.alloc(300));
    const old = new Date(Date.now() - 2 * DAY);
    await utimes(tmpFile, old, old);
    const pinnedLayer = [...digestOnly.blobs.keys()].find((d) => digestOnly.blobs.get(d)!.length === 2000)!;

    const dry = sink();
    const preview = gcCounts(await gcCommand(configFor(dir), { dryRun: true, out: dry.out }));
    expect(preview).toMatchObject({ manifests: 1, blobs: 2, tempFiles: 1, tempBytes: 300 });
    expect(dry.lines.join('')).toMatch(/^would free [\d.]+ KiB: 2 blob\(s\)/);
    expect(existsSync(blobFile(dir, pinnedLayer))).toBe(true);
    expect(existsSync(tmpFile)).toBe(true);

    const real = sink();
    const report = gcCounts(await gcCommand(configFor(dir), { dryRun: false, out: real.out }));
    expect(report).toMatchObject({ manifests: 1, blobs: 2, tempFiles: 1 });
    expect(real.lines.join('')).toMatch(/^freed /);
    expect(existsSync(blobFile(dir, pinnedLayer))).toBe(false);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    for (const d of tagged.blobs.keys()) expect(existsSync(blobFile(dir, d))).toBe(true);

    // within the grace period nothing goes
    const again = gcCounts(await gcCommand(configFor(dir), { dryRun: false, graceMs: 365 * DAY, out: sink().out }));
    expect(again).toMatchObject({ manifests: 0, blobs: 0, tempFiles: 0 });
  });

  it('takes an unused index with its children and their blobs in one run', async () => {
    const { index, children } = makeIndex('team/multi', 'gone', ['amd64', 'arm64'], [1000], 3);
    const kept = makeImage('team/kept', 'v1', [500], 4);
    const dir = await cacheWith([kept], Date.now() - 3 * DAY, [index, ...children]);
    const report = await gcCommand(configFor(dir), { dryRun: false, out: sink().out });
    expect(report.manifests.map((m) => m.digest).sort()).toEqual([index.manifestDigest, ...children.map((c) => c.manifestDigest)].sort());
    for (const child of children) for (const d of child.blobs.keys()) expect(existsSync(blobFile(dir, d))).toBe(false);
    for (const d of kept.blobs.keys()) expect(existsSync(blobFile(dir, d))).toBe(true);
    const again = gcCounts(await gcCommand(configFor(dir), { dryRun: false, out: sink().out }));
    expect(again).toMatchObject({ manifests: 0, blobs: 0 });
  });

  it('--dry-run frees exactly what the run after it frees (reconciling included), lists it with --verbose, and leaves the directory as it was', async () => {
    const { index, children } = makeIndex('team/multi', 'gone', ['amd64', 'arm64'], [1000], 3);
    const broken = makeImage('team/broken', 'v1', [700, 800], 9);
    const kept = makeImage('team/kept', 'v1', [500], 4);
    const dir = await cacheWith([kept, broken], Date.now() - 3 * DAY, [index, ...children]);
    // a layer of a tagged image lost from the disk: reconciling drops the image, whose other blobs are then free
    const [lost] = [...broken.blobs.entries()].find(([, b]) => b.length === 700)!;
    await rm(blobFile(dir, lost));
    const tmpFile = join(dir, 'tmp', 'sha256-dead.abc');
    await writeFile(tmpFile, Buffer.alloc(300));
    const old = new Date(Date.now() - 2 * DAY);
    await utimes(tmpFile, old, old);
    const before = await listTree(dir);

    const dry = sink();
    const preview = await gcCommand(configFor(dir), { dryRun: true, verbose: true, out: dry.out });
    expect(await listTree(dir)).toEqual(before);
    const real = sink();
    const freed = await gcCommand(configFor(dir), { dryRun: false, verbose: true, out: real.out });

    expect(preview).toEqual(freed);
    expect(freed.manifests).toHaveLength(3); // the broken image's manifest went with reconciling
    expect(dry.lines.join('').replace(/would reconcile/g, 'reconciled').replace(/would free/g, 'freed')).toBe(real.lines.join(''));
    const listing = real.lines.join('');
    expect(listing).toContain(`manifest       ${index.manifestDigest}`);
    for (const d of broken.blobs.keys()) if (d !== lost) expect(listing).toContain(`blob           ${d}`);
    expect(listing).toContain(`temp file      ${join('tmp', 'sha256-dead.abc')}  300 B`);
    expect(listing).toMatch(/^reconciled the database with the disk: 1 row\(s\) of missing blobs dropped/m);
  });

  it('--dry-run on a cache directory that does not exist creates nothing', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'acr-mirror-gc-'));
    try {
      const out = sink();
      const report = gcCounts(await gcCommand(configFor(join(parent, 'data')), { dryRun: true, out: out.out }));
      expect(report).toMatchObject({ manifests: 0, blobs: 0, tempFiles: 0, referrerLists: 0 });
      expect(out.lines.join('')).toMatch(/^would free 0 B: /);
      expect(await readdir(parent)).toEqual([]);
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });

  it('keeps the referrers (signatures, SBOMs) of a cached image, and their blobs, however long unused', async () => {
    const image = makeImage('team/signed', 'v1', [1000], 5);
    const signature = makeArtifact(image, 'application/vnd.cncf.notary.signature', 6);
    const orphan = makeArtifact(makeImage('team/signed', 'gone', [10], 7), 'application/spdx+json', 8);
    const dir = await cacheWith([image], Date.now() - 3 * DAY, [signature, orphan]);
    const report = await gcCommand(configFor(dir), { dryRun: false, out: sink().out });
    expect(report.manifests).toHaveLength(1);
    for (const d of signature.blobs.keys()) expect(existsSync(blobFile(dir, d))).toBe(true);
    const db = openDatabase(join(dir, 'mirror.db'));
    const kept = db.prepare('SELECT digest FROM manifests').all().map((r) => (r as { digest: string }).digest);
    db.close();
    expect(kept.sort()).toEqual([image.manifestDigest, signature.manifestDigest].sort());
  });

  it('drops referrers lists of digests no longer cached once unchecked past the grace period, keeps those of cached images', async () => {
    const image = makeImage('team/signed', 'v1', [1000], 5);
    const signature = makeArtifact(image, 'application/vnd.cncf.notary.signature', 6);
    const goneImage = makeImage('team/signed', 'gone', [10], 7);
    const orphan = makeArtifact(goneImage, 'application/spdx+json', 8);
    const lists = [`/v2/team/signed/referrers/${image.manifestDigest}`, `/v2/team/signed/referrers/${goneImage.manifestDigest}`];
    const dir = await cacheWith([image], Date.now() - 3 * DAY, [signature, orphan], lists);
    const subjects = () => {
      const db = openDatabase(join(dir, 'mirror.db'));
      const rows = db.prepare('SELECT digest FROM referrers').all().map((r) => (r as { digest: string }).digest);
      db.close();
      return rows.sort();
    };
    expect(subjects()).toEqual([image.manifestDigest, goneImage.manifestDigest].sort());
    const dry = await gcCommand(configFor(dir), { dryRun: true, out: sink().out });
    expect(dry.referrerLists).toHaveLength(1);
    expect(subjects()).toHaveLength(2);
    const report = await gcCommand(configFor(dir), { dryRun: false, out: sink().out });
    expect(report.referrerLists).toHaveLength(1);
    expect(subjects()).toEqual([image.manifestDigest]);
  });

  it('beside a running mirror: a manifest it removed stops being served from the mirror\'s memory within 30 s', async () => {
    const pinned = makeImage('team/pinned', 'unused', [2000], 2);
    const fake = new FakeUpstream();
    fake.add(pinned);
    let clock = Date.now() - 3 * DAY;
    m = await startTestMirror(fake, { now: () => clock });
    const path = `/v2/${pinned.repo}/manifests/${pinned.manifestDigest}`;
    expect((await m.request(path)).status).toBe(200);
    fake.intercept = () => new Response('down', { status: 404 });

    const preview = await gcCommand(configFor(join(m.dir, 'data')), { dryRun: true, out: sink().out });
    const report = await gcCommand(configFor(join(m.dir, 'data')), { dryRun: false, out: sink().out });
    expect(report.manifests).toHaveLength(1);
    expect(preview).toEqual(report);
    expect((await m.request(path)).headers.get('x-cache')).toBe('hit'); // still in memory
    clock += 31_000;
    const gone = await m.request(path);
    expect(gone.status).toBe(404);
    expect(gone.headers.get('x-cache')).toBeNull();
  });
});
