import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type OssKeys, OssCredentialsError, TemporaryOssCredentials } from '../../src/cache/oss-credentials.js';
import { OssStoreError } from '../../src/cache/oss-client.js';
import { commitBlob } from '../support/commit-blob.js';
import { randomBlob, sha256 } from '../support/fake-upstream.js';
import { ossStoreFixture, type OssStoreFixture } from '../support/oss-store.js';

let f: OssStoreFixture;
beforeEach(async () => {
  f = await ossStoreFixture();
});
afterEach(() => f.cleanup());

/** Stands in for @alicloud/credentials with a RAM role: answers the keys it holds now, which the test renews. */
function renewingProvider(first: OssKeys) {
  const provider = { keys: first, calls: 0, async getCredential() {
    provider.calls++;
    return provider.keys;
  } };
  return provider;
}

describe('OSS store signing with temporary credentials (RAM role)', () => {
  it('signs every request with the keys the provider holds at the time, so renewed keys take over before the old expire', async () => {
    f.oss.keyring.grant('sts-ak-1', 'sts-secret-1', 'token-1');
    const provider = renewingProvider({ accessKeyId: 'sts-ak-1', accessKeySecret: 'sts-secret-1', securityToken: 'token-1' });
    const store = f.newStore({ temporaryCredentials: new TemporaryOssCredentials(provider, 'ECS RAM role test-role') });
    const blob = randomBlob(250 * 1024, 1);
    const digest = await commitBlob(store, blob);
    expect(await store.stat(digest)).toEqual({ size: blob.length });

    // The provider renewed; the old keys then expire at OSS.
    f.oss.keyring.grant('sts-ak-2', 'sts-secret-2', 'token-2');
    provider.keys = { accessKeyId: 'sts-ak-2', accessKeySecret: 'sts-secret-2', securityToken: 'token-2' };
    f.oss.keyring.revoke('sts-ak-1');
    expect(await store.stat(digest)).toEqual({ size: blob.length });
    const reader = (await store.open(digest))!;
    const chunks: Buffer[] = [];
    for await (const chunk of reader.stream()) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).equals(blob)).toBe(true);
    const url = (await store.presignedUrl(digest, 60_000))!;
    expect(url).toContain('security-token=token-2');
    expect(Buffer.from(await (await fetch(url)).arrayBuffer()).equals(blob)).toBe(true);
  });

  it('is refused without the security token OSS expects with the keys', async () => {
    f.oss.keyring.grant('sts-ak-1', 'sts-secret-1', 'token-1');
    const provider = renewingProvider({ accessKeyId: 'sts-ak-1', accessKeySecret: 'sts-secret-1', securityToken: 'stale-token' });
    const store = f.newStore({ temporaryCredentials: new TemporaryOssCredentials(provider, 'ECS RAM role test-role') });
    const err = await store.stat(sha256(Buffer.from('x'))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OssStoreError);
    expect((err as OssStoreError).code).toBe('InvalidSecurityToken');
  });

  it('fails each request with the source and reason when the provider cannot give keys, never a key', async () => {
    const failing = { async getCredential(): Promise<OssKeys> {
      throw new Error('get role name failed: request http://100.100.100.200/latest/meta-data/ram/security-credentials/ timeout');
    } };
    const store = f.newStore({ temporaryCredentials: new TemporaryOssCredentials(failing, 'ECS RAM role test-role') });
    const err = await store.stat(sha256(Buffer.from('x'))).catch((e: unknown) => e);
    expect(String(err)).toMatch(/cannot get OSS credentials from ECS RAM role test-role: get role name failed/);
    expect(err).toBeInstanceOf(OssStoreError);
    const incomplete = new TemporaryOssCredentials({ getCredential: async () => ({ accessKeyId: 'sts-ak-1', accessKeySecret: 's' }) }, 'ECS RAM role r');
    await expect(incomplete.current()).rejects.toThrow(OssCredentialsError);
  });
});
