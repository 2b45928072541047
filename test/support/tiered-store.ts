import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { FsBlobStore } from '../../src/cache/fs-blob-store.js';
import { type CacheLayout, cacheLayout } from '../../src/cache/layout.js';
import { TieredBlobStore, type TieredStoreOptions } from '../../src/cache/tiered-blob-store.js';
import type { OssStoreOptions } from '../../src/cache/oss-blob-store.js';
import { OSS_PREFIX, ossStoreFixture, type OssStoreFixture } from './oss-store.js';

/** A blob's key in the fixture's bucket. */
export const keyOf = (digest: string) => `${OSS_PREFIX}blobs/sha256/${digest.slice(7)}`;
/** A blob's local copy, relative to the cache directory. */
export const localFile = (digest: string) => `blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}`;

/** A cache directory, the bucket store's options (e.g. its timeout), and the tiered store's. */
type NewStoreOptions = { dir?: string; oss?: Partial<OssStoreOptions> } & Partial<TieredStoreOptions>;

/** The OSS store fixture with a local disk in front of its bucket: a TieredBlobStore, its log lines, and its files. */
export interface TieredStoreFixture {
  f: OssStoreFixture;
  store: TieredBlobStore;
  layout: CacheLayout;
  /** What the store logged, parsed. */
  logged: { level: number; msg: string; [field: string]: unknown }[];
  /** Every file under the cache directory's tmp/ and blobs/, relative to it. */
  diskFiles(): Promise<string[]>;
  /** Another tiered store (not prepared) on the same bucket, over the given cache directory (default: the same one). */
  newStore(opts?: NewStoreOptions): TieredBlobStore;
  cleanup(): Promise<void>;
}

export async function tieredStoreFixture(opts: Partial<TieredStoreOptions> = {}): Promise<TieredStoreFixture> {
  const f = await ossStoreFixture();
  const layout = cacheLayout(f.tmpDir);
  const logged: TieredStoreFixture['logged'] = [];
  const log = pino({ level: 'info' }, new Writable({ write: (chunk, _enc, done) => void (logged.push(JSON.parse(String(chunk))), done()) }));
  const newStore = ({ dir, oss, ...more }: NewStoreOptions = {}) => {
    const at = dir ? cacheLayout(dir) : layout;
    return new TieredBlobStore(new FsBlobStore(at), f.newStore({ tmpDir: at.tmp, ...oss }), { log, ...opts, ...more });
  };
  const store = newStore();
  await store.prepare();
  return {
    f,
    store,
    layout,
    logged,
    diskFiles: async () => {
      const entries = await readdir(f.tmpDir, { recursive: true, withFileTypes: true }).catch(() => []);
      return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(f.tmpDir.length + 1));
    },
    newStore,
    async cleanup() {
      await store.copiesEnded();
      await f.cleanup();
    },
  };
}
