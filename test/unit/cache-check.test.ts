// The e2e suites trust expectCacheConsistent to catch a broken cache: these cases prove that it can fail.
import { mkdir, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectCacheConsistent } from '../e2e/harness/mirror-check.js';
import { FakeUpstream, makeImage } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';

let fake: FakeUpstream;
let m: TestMirror;
let data: string;
let digest: string;
/** The checks below fail for good: no need to wait for a fill to settle. */
const NO_WAIT = { timeoutMs: 0 };
const blobFile = () => join(data, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));

beforeEach(async () => {
  fake = new FakeUpstream();
  const img = fake.add(makeImage('team/app', 'v1', [5000]));
  digest = [...img.blobs.entries()].find(([, b]) => b.length === 5000)![0];
  m = await startTestMirror(fake);
  data = join(m.dir, 'data');
  await (await m.request(`/v2/team/app/blobs/${digest}`)).arrayBuffer();
  await m.mirror.fills.settled();
});
afterEach(async () => {
  await m.close();
});

describe('expectCacheConsistent', () => {
  it('passes on a cache the mirror filled', async () => {
    await expectCacheConsistent(data);
  });

  it('fails without blobs/, tmp/ or mirror.db', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'acr-mirror-check-'));
    try {
      await expect(expectCacheConsistent(empty, NO_WAIT)).rejects.toThrow(/blobs\/ cannot be listed[\s\S]*mirror.db is missing[\s\S]*tmp\/ cannot be listed/);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  it('fails when a row has no file, or a file has no row', async () => {
    await rm(blobFile());
    await expect(expectCacheConsistent(data, NO_WAIT)).rejects.toThrow(`row ${digest} has no file`);
    await writeFile(blobFile(), 'x');
    const db = new Database(join(data, 'mirror.db'));
    db.prepare('DELETE FROM blobs WHERE digest = ?').run(digest);
    db.close();
    await expect(expectCacheConsistent(data, NO_WAIT)).rejects.toThrow(`blob file ${digest} has no row`);
  });

  it('fails when a file does not hash to its name or has the wrong size', async () => {
    await truncate(blobFile(), 4000);
    await expect(expectCacheConsistent(data, NO_WAIT)).rejects.toThrow(new RegExp(`${digest} has 4000 bytes, its row 5000[\\s\\S]*${digest} hashes to sha256:`));
  });

  it('fails when a blob sits in the wrong directory or a temp file is left', async () => {
    const stray = `sha256:ff${digest.slice(9)}`;
    await mkdir(join(data, 'blobs', 'sha256', digest.slice(7, 9)), { recursive: true });
    await writeFile(join(data, 'blobs', 'sha256', digest.slice(7, 9), stray.slice(7)), 'x');
    await writeFile(join(data, 'tmp', 'left-behind'), 'x');
    await expect(expectCacheConsistent(data, NO_WAIT)).rejects.toThrow(/is in the wrong directory[\s\S]*leftover temp files: left-behind/);
  });
});
