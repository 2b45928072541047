import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OSS from 'ali-oss';
import { OssBlobStore, type OssStoreOptions } from '../../src/cache/oss-blob-store.js';
import { OssTestServer } from './oss-server.js';

export const OSS_BUCKET = 'mirror-blobs';
export const OSS_PREFIX = 'mirror/';
/** The smallest part OSS takes, so that the contract's blobs of a few 100 KB span several parts. */
export const TEST_PART_SIZE = 100 * 1024;

/** An OSS test server, an OssBlobStore on it, and ways to look at what the bucket and the spool directory hold. */
export interface OssStoreFixture {
  oss: OssTestServer;
  store: OssBlobStore;
  tmpDir: string;
  options: OssStoreOptions;
  /** A plain ali-oss client on the same bucket (to leave what another process would). */
  client: OSS;
  /** Open uploads and objects under the prefix, as names. */
  bucketResidue(): string[];
  spoolFiles(): Promise<string[]>;
  newStore(overrides?: Partial<OssStoreOptions>): OssBlobStore;
  cleanup(): Promise<void>;
}

export async function ossStoreFixture(overrides: Partial<OssStoreOptions> = {}): Promise<OssStoreFixture> {
  const oss = await OssTestServer.start({ buckets: [OSS_BUCKET], credentials: { 'store-ak': 'store-secret' } });
  const tmpDir = await mkdtemp(join(tmpdir(), 'acr-oss-store-'));
  const options: OssStoreOptions = {
    bucket: OSS_BUCKET, endpoint: oss.cnameEndpoint, cname: true, accessKeyId: 'store-ak', accessKeySecret: 'store-secret',
    timeoutMs: 10_000, prefix: OSS_PREFIX, partSize: TEST_PART_SIZE, tmpDir, ...overrides,
  };
  const newStore = (more: Partial<OssStoreOptions> = {}) => new OssBlobStore({ ...options, ...more });
  const store = newStore();
  await store.prepare();
  return {
    oss,
    store,
    tmpDir,
    options,
    client: new OSS({ endpoint: oss.cnameEndpoint, cname: true, bucket: OSS_BUCKET, accessKeyId: 'store-ak', accessKeySecret: 'store-secret', secure: false }),
    bucketResidue: () => [
      ...oss.openUploads().filter((u) => u.key.startsWith(OSS_PREFIX)).map((u) => `upload ${u.key}`),
      ...oss.keys().filter((k) => k.startsWith(OSS_PREFIX)),
    ],
    spoolFiles: () => readdir(tmpDir).catch(() => []),
    newStore,
    async cleanup() {
      await oss.close();
      await rm(tmpDir, { recursive: true, force: true });
    },
  };
}
