// Issue 18: manifests and tags shared in the bucket.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OssManifestStore } from '../../src/cache/oss-manifest-store.js';
import { ossStoreFixture, type OssStoreFixture } from '../support/oss-store.js';

let f: OssStoreFixture;

beforeEach(async () => {
  f = await ossStoreFixture();
});
afterEach(async () => {
  await f.cleanup();
});

describe('OssManifestStore tag keys', () => {
  it('keep nested repository names and every tag character, and refuse names that could make keys ambiguous', () => {
    const store = new OssManifestStore({ ...f.options, prefix: 'p' });
    expect(store.tagKey('acr', 'team/sub/app', 'v1.0_rc-1')).toBe('p/tags/acr/team/sub/app/v1.0_rc-1');
    expect(store.tagKey('acr', 'team/../app', 'v1')).toBeNull();
    expect(store.tagKey('acr', 'team/app', 'a/b')).toBeNull();
    expect(store.tagKey('acr', 'team/app', '..')).toBeNull();
    expect(store.tagKey('a/b', 'app', 'v1')).toBeNull();
  });
});
