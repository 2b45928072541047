import dns from 'node:dns';
import { afterAll, beforeAll } from 'vitest';
import { OSS_BUCKET, type OssStoreFixture } from './oss-store.js';

/** The environment giving a mirror the OSS test fixture's key pair. */
export const OSS_ENV = { ALIBABA_CLOUD_ACCESS_KEY_ID: 'store-ak', ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'store-secret' };

/**
 * ali-oss addresses the bucket as <bucket>.<endpoint host> and presigns only for a host name (not an IP), so the
 * mirror and the test reach the test server (on 127.0.0.1) as mirror-blobs.localhost: resolved to loopback while
 * the calling test file runs (RFC 6761), as systemd-resolved and browsers do but glibc does not.
 */
export function resolveLocalhostSubdomains(): void {
  const systemLookup = dns.lookup;
  beforeAll(() => {
    dns.lookup = ((host: string, ...rest: unknown[]) =>
      (systemLookup as (...args: unknown[]) => void)(host.endsWith('.localhost') ? '127.0.0.1' : host, ...rest)) as typeof dns.lookup;
  });
  afterAll(() => {
    dns.lookup = systemLookup;
  });
}

/** A mirror's config with its blobs in the fixture's bucket under mirror-a/ (no prefetch: counts stay exact). */
export const ossMirrorConfig = (f: OssStoreFixture, storage: Record<string, unknown> = {}, oss: Record<string, unknown> = {}) => ({
  storage: { dir: 'data', backend: 'oss', oss: { bucket: OSS_BUCKET, endpoint: f.oss.cnameEndpoint, prefix: 'mirror-a/', part_size: '100KiB', ...oss }, ...storage },
  cache: { prefetch: false },
});
