import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RegistryError, type ErrorKind } from '../../src/http/errors.js';
import { parseDigest } from '../../src/oci/digest.js';
import { MAX_NAME_LENGTH, parseName, parseReference } from '../../src/oci/reference.js';
import { parseRegistryPath } from '../../src/registry/path.js';
import { FakeUpstream, makeImage } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';

const HEX64 = '0123456789abcdef'.repeat(4);
const DIGEST = `sha256:${HEX64}`;

/** Runs fn, asserts it throws a RegistryError of the given kind (with the table's status and code), returns it. */
function expectRegistryError(fn: () => unknown, kind: ErrorKind, status: number, code: string): RegistryError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, 'expected a RegistryError to be thrown').toBeInstanceOf(RegistryError);
  const e = caught as RegistryError;
  expect(e.kind).toBe(kind);
  expect(e.status).toBe(status);
  expect(e.code).toBe(code);
  return e;
}

describe('parseName', () => {
  const valid = ['a', 'library/nginx', 'a/b/c', 'a.b_c__d-e--f', 'x0/y1.z2', `${'a'.repeat(MAX_NAME_LENGTH)}`];

  it.each(valid)('accepts %j', (name) => {
    expect(parseName(name)).toBe(name);
  });

  it('accepts exactly 255 characters spread over components', () => {
    const name = `${'a'.repeat(127)}/${'b'.repeat(127)}`;
    expect(name).toHaveLength(255);
    expect(parseName(name)).toBe(name);
  });

  const invalid: [string, string][] = [
    ['empty', ''],
    ['uppercase', 'Foo'],
    ['dot-dot prefix', '../etc'],
    ['dot-dot segment', 'a/../b'],
    ['dot segment', 'a/./b'],
    ['empty segment', 'a//b'],
    ['leading slash', '/a'],
    ['trailing slash', 'a/'],
    ['leading dash', '-a'],
    ['trailing dash', 'a-'],
    ['double dot separator', 'a..b'],
    ['triple underscore', 'a___b'],
    ['256 chars', 'a'.repeat(MAX_NAME_LENGTH + 1)],
    ['256 chars over components', `${'a'.repeat(127)}/${'b'.repeat(128)}`],
    ['10 KB', 'a'.repeat(10 * 1024)],
    ['unicode', 'ngïnx'],
    ['unicode lookalike', 'nginх'], // Cyrillic х
    ['percent-encoded dots', '%2e%2e'],
    ['percent-encoded slash', 'a%2fb'],
    ['space', 'a b'],
    ['colon', 'a:b'],
    ['newline', 'a\nb'],
    ['trailing newline', 'a\n'],
    ['NUL', 'a\0'],
  ];

  it.each(invalid)('rejects %s with NAME_INVALID', (_label, name) => {
    expectRegistryError(() => parseName(name), 'NAME_INVALID', 400, 'NAME_INVALID');
  });

  it('does not echo a huge name back in full', () => {
    const e = expectRegistryError(() => parseName('A'.repeat(10 * 1024)), 'NAME_INVALID', 400, 'NAME_INVALID');
    expect(e.message.length).toBeLessThan(300);
  });
});

describe('parseDigest', () => {
  it('accepts sha256 with 64 lowercase hex digits', () => {
    expect(parseDigest(DIGEST)).toBe(DIGEST);
  });

  const unsupported: [string, string][] = [
    ['sha512', `sha512:${HEX64}${HEX64}`],
    ['md5', 'md5:d41d8cd98f00b204e9800998ecf8427e'],
    ['sha384', `sha384:${'ab'.repeat(48)}`],
  ];
  it.each(unsupported)('rejects %s as an unsupported algorithm', (_label, value) => {
    const e = expectRegistryError(() => parseDigest(value), 'DIGEST_INVALID', 400, 'DIGEST_INVALID');
    expect(e.message).toMatch(/unsupported/i);
    expect(e.message).not.toMatch(/malformed/i);
  });

  const wrongEncoding: [string, string][] = [
    ['uppercase hex', `sha256:${HEX64.toUpperCase()}`],
    ['63 hex', `sha256:${HEX64.slice(1)}`],
    ['65 hex', `sha256:${HEX64}0`],
    ['64 non-hex letters', `sha256:${'z'.repeat(64)}`],
  ];
  it.each(wrongEncoding)('rejects sha256 with %s', (_label, value) => {
    expectRegistryError(() => parseDigest(value), 'DIGEST_INVALID', 400, 'DIGEST_INVALID');
  });

  const malformed: [string, string][] = [
    ['empty', ''],
    ['no colon', HEX64],
    ['algorithm only', 'sha256:'],
    ['encoded only', `:${HEX64}`],
    ['invalid characters', 'sha256:zz..'],
    ['uppercase algorithm', `SHA256:${HEX64}`],
    ['trailing whitespace', `${DIGEST} `],
    ['two colons', `sha256:${HEX64}:x`],
  ];
  it.each(malformed)('rejects %s as malformed', (_label, value) => {
    const e = expectRegistryError(() => parseDigest(value), 'DIGEST_INVALID', 400, 'DIGEST_INVALID');
    expect(e.message).toMatch(/malformed/i);
    expect(e.message).not.toMatch(/unsupported/i);
  });
});

describe('parseReference', () => {
  it.each(['latest', 'v1.2.3', '_x', 'A-b_c.D', '0', 'a'.repeat(128)])('accepts tag %j', (tag) => {
    expect(parseReference(tag)).toEqual({ kind: 'tag', tag });
  });

  it('accepts a sha256 digest', () => {
    expect(parseReference(DIGEST)).toEqual({ kind: 'digest', digest: DIGEST });
  });

  const invalid: [string, string][] = [
    ['129 chars', 'a'.repeat(129)],
    ['leading dot', '.x'],
    ['leading dash', '-x'],
    ['slash', 'a/b'],
    ['empty', ''],
    ['space', 'a b'],
    ['unicode', 'tä'],
    ['bad digest (short)', `sha256:${HEX64.slice(1)}`],
    ['bad digest (sha512)', `sha512:${HEX64}${HEX64}`],
    ['bad digest (no encoded part)', 'sha256:'],
    ['tag-looking with colon', 'v1:2'],
  ];
  it.each(invalid)('rejects %s with MANIFEST_INVALID', (_label, value) => {
    expectRegistryError(() => parseReference(value), 'MANIFEST_INVALID', 400, 'MANIFEST_INVALID');
  });
});

describe('parseRegistryPath', () => {
  it.each(['/v2/', '/v2'])('recognises the ping endpoint %j', (path) => {
    expect(parseRegistryPath(path)).toEqual({ kind: 'ping' });
  });

  it('parses a manifest by tag for a multi-segment name', () => {
    expect(parseRegistryPath('/v2/team/sub/app/manifests/v1.0')).toEqual({
      kind: 'manifest',
      name: 'team/sub/app',
      reference: { kind: 'tag', tag: 'v1.0' },
    });
  });

  it('parses a manifest by digest', () => {
    expect(parseRegistryPath(`/v2/library/nginx/manifests/${DIGEST}`)).toEqual({
      kind: 'manifest',
      name: 'library/nginx',
      reference: { kind: 'digest', digest: DIGEST },
    });
  });

  it('parses a blob for a multi-segment name', () => {
    expect(parseRegistryPath(`/v2/a/b/c/blobs/${DIGEST}`)).toEqual({ kind: 'blob', name: 'a/b/c', digest: DIGEST });
  });

  it('parses a tag list for a multi-segment name', () => {
    expect(parseRegistryPath('/v2/a/b/c/tags/list')).toEqual({ kind: 'tags', name: 'a/b/c' });
  });

  it('lets the last /manifests/ decide when a name segment is called "blobs"', () => {
    expect(parseRegistryPath('/v2/a/blobs/b/manifests/latest')).toEqual({
      kind: 'manifest',
      name: 'a/blobs/b',
      reference: { kind: 'tag', tag: 'latest' },
    });
  });

  it('lets the last /blobs/ decide when a name segment is called "manifests"', () => {
    expect(parseRegistryPath(`/v2/a/manifests/b/blobs/${DIGEST}`)).toEqual({ kind: 'blob', name: 'a/manifests/b', digest: DIGEST });
  });

  it('handles a name segment called "tags"', () => {
    expect(parseRegistryPath('/v2/tags/manifests/latest')).toEqual({
      kind: 'manifest',
      name: 'tags',
      reference: { kind: 'tag', tag: 'latest' },
    });
    expect(parseRegistryPath('/v2/x/tags/tags/list')).toEqual({ kind: 'tags', name: 'x/tags' });
  });

  it.each(['/v2/x/blobs/uploads/', '/v2/x/blobs/uploads', '/v2/x/y/blobs/uploads/3f1c-uuid', '/v2/x/blobs/uploads/abc?digest=x'])(
    'returns null for the upload endpoint %j',
    (path) => {
      expect(parseRegistryPath(path)).toBeNull();
    },
  );

  it('rejects a percent-encoded slash in the name', () => {
    expectRegistryError(() => parseRegistryPath('/v2/a%2Fb/manifests/latest'), 'NAME_INVALID', 400, 'NAME_INVALID');
  });

  it('rejects a lowercase percent-encoded slash in the name', () => {
    expectRegistryError(() => parseRegistryPath(`/v2/library%2fnginx/blobs/${DIGEST}`), 'NAME_INVALID', 400, 'NAME_INVALID');
  });

  it.each(['/v2/a/%2e%2e/b/manifests/latest', '/v2/%2E%2E/manifests/latest', '/v2/a/../b/manifests/latest', '/v2/../etc/tags/list'])(
    'rejects dot-dot segments in %j',
    (path) => {
      expectRegistryError(() => parseRegistryPath(path), 'NAME_INVALID', 400, 'NAME_INVALID');
    },
  );

  it.each(['/v2/a%zz/manifests/latest', '/v2/a%/manifests/latest', '/v2/a%e0%a4/tags/list'])('rejects malformed percent-encoding %j', (path) => {
    expectRegistryError(() => parseRegistryPath(path), 'NAME_INVALID', 400, 'NAME_INVALID');
  });

  it('does not decode the name: any percent-encoding in it is invalid', () => {
    expectRegistryError(() => parseRegistryPath('/v2/%6cibrary/nginx/tags/list'), 'NAME_INVALID', 400, 'NAME_INVALID');
  });

  it('percent-decodes the manifest reference (clients may send %3A)', () => {
    expect(parseRegistryPath(`/v2/a/b/manifests/sha256%3A${HEX64}`)).toEqual({
      kind: 'manifest',
      name: 'a/b',
      reference: { kind: 'digest', digest: DIGEST },
    });
    expect(parseRegistryPath('/v2/a/manifests/v1%2E0')).toEqual({ kind: 'manifest', name: 'a', reference: { kind: 'tag', tag: 'v1.0' } });
  });

  it('percent-decodes the blob digest', () => {
    expect(parseRegistryPath(`/v2/a/blobs/sha256%3a${HEX64}`)).toEqual({ kind: 'blob', name: 'a', digest: DIGEST });
  });

  // The distribution-spec (and its conformance tests, with `.INVALID_MANIFEST_NAME`) answers a manifest
  // reference that can name no manifest with 404 MANIFEST_UNKNOWN.
  it.each([
    ['a reference that decodes to something with a slash', '/v2/a/manifests/v1%2Flatest', /invalid tag: v1\/latest/],
    ['malformed percent-encoding in a manifest reference', '/v2/a/manifests/v1%zz', /malformed percent-encoding/],
    ['a tag starting with a dot', '/v2/a/manifests/.INVALID_MANIFEST_NAME', /invalid tag: \.INVALID_MANIFEST_NAME/],
    ['a short digest', '/v2/a/manifests/sha256:abc', /invalid manifest digest: sha256:abc/],
    ['a sha512 digest', `/v2/a/manifests/sha512:${HEX64}${HEX64}`, /invalid manifest digest/],
  ])('answers %s with MANIFEST_UNKNOWN saying why', (_label, path, why) => {
    const e = expectRegistryError(() => parseRegistryPath(path), 'MANIFEST_UNKNOWN', 404, 'MANIFEST_UNKNOWN');
    expect(e.message).toMatch(/neither a valid tag nor a sha256 digest/);
    expect(e.message).toMatch(why);
  });

  it('rejects malformed percent-encoding in a blob digest with DIGEST_INVALID', () => {
    expectRegistryError(() => parseRegistryPath(`/v2/a/blobs/sha256%zz${HEX64}`), 'DIGEST_INVALID', 400, 'DIGEST_INVALID');
  });

  it('rejects an invalid name with NAME_INVALID', () => {
    expectRegistryError(() => parseRegistryPath('/v2/Library/manifests/latest'), 'NAME_INVALID', 400, 'NAME_INVALID');
    expectRegistryError(() => parseRegistryPath('/v2//manifests/latest'), 'NAME_INVALID', 400, 'NAME_INVALID');
  });

  it('rejects an invalid blob digest with DIGEST_INVALID', () => {
    expectRegistryError(() => parseRegistryPath('/v2/a/blobs/sha256:abc'), 'DIGEST_INVALID', 400, 'DIGEST_INVALID');
  });

  it.each(['/', '/v1/', '/v2x', '/v3/a/manifests/latest', '/v2/a', '/v2/a/b', '/v2/a/tags', '/v2/a/tags/list/x', '/v2/a/manifests', 'v2/a/tags/list', '/health'])(
    'returns null for unrelated path %j',
    (path) => {
      expect(parseRegistryPath(path)).toBeNull();
    },
  );
});

describe('a manifest reference that is neither a tag nor a digest, through the app', () => {
  let fake: FakeUpstream;
  let m: TestMirror;
  beforeEach(async () => {
    fake = new FakeUpstream();
    fake.add(makeImage('team/app', 'v1', [100]));
    m = await startTestMirror(fake);
  });
  afterEach(async () => {
    await m.close();
  });

  it.each(['.INVALID_MANIFEST_NAME', 'sha256:abc', 'v1%2Flatest', 'a'.repeat(129)])('GET %s answers 404 MANIFEST_UNKNOWN without asking the upstream', async (ref) => {
    const res = await m.request(`/v2/team/app/manifests/${ref}`);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toMatch(/^application\/json\b/);
    const body = (await res.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors).toEqual([{ code: 'MANIFEST_UNKNOWN', message: expect.stringMatching(/neither a valid tag nor a sha256 digest/) }]);
    expect(fake.calls).toEqual([]);
  });

  it('HEAD answers 404 with no body, without asking the upstream', async () => {
    const res = await m.request('/v2/team/app/manifests/.INVALID_MANIFEST_NAME', { method: 'HEAD' });
    expect(res.status).toBe(404);
    expect(await res.text()).toBe('');
    expect(fake.calls).toEqual([]);
  });

  it('a valid tag still reaches the upstream', async () => {
    expect((await m.request('/v2/team/app/manifests/v1')).status).toBe(200);
    expect(fake.count({ host: 'registry.test', pathIncludes: '/manifests/v1' })).toBeGreaterThan(0);
  });
});
