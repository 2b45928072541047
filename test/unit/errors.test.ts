import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ERROR_TABLE, RegistryError, type ErrorKind } from '../../src/http/errors.js';
import { ADMIN_ENV, bearer } from '../support/admin.js';
import { FakeUpstream, sha256 } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';

/**
 * Error codes and the statuses the OCI distribution-spec gives them (spec "Error Codes" table and the status each
 * endpoint answers with), plus the codes Distribution adds (errcode.ErrorCodeUnknown/Unavailable/... and its
 * v2 errors). UNAVAILABLE is how the mirror reports its upstream: 502, 503 or 504 depending on what failed.
 */
const SPEC_STATUSES: Record<string, number[]> = {
  BLOB_UNKNOWN: [404],
  BLOB_UPLOAD_INVALID: [400],
  BLOB_UPLOAD_UNKNOWN: [404],
  DIGEST_INVALID: [400],
  MANIFEST_BLOB_UNKNOWN: [404],
  MANIFEST_INVALID: [400],
  MANIFEST_UNKNOWN: [404],
  NAME_INVALID: [400],
  NAME_UNKNOWN: [404],
  SIZE_INVALID: [400],
  UNAUTHORIZED: [401],
  DENIED: [403],
  UNSUPPORTED: [405],
  TOOMANYREQUESTS: [429],
  // Distribution's own codes
  UNKNOWN: [500],
  UNAVAILABLE: [502, 503, 504],
  PAGINATION_NUMBER_INVALID: [400],
  RANGE_INVALID: [416],
  NOT_FOUND: [404],
  // the admin API's refusal of a malformed (400) or too large (413) request body or parameter
  INVALID_REQUEST: [400, 413],
};

/** Kinds the mirror answers with that have an OCI code of the same name. */
const OCI_KINDS = ['BLOB_UNKNOWN', 'MANIFEST_UNKNOWN', 'NAME_UNKNOWN', 'NAME_INVALID', 'DIGEST_INVALID', 'MANIFEST_INVALID', 'UNAUTHORIZED', 'DENIED', 'UNSUPPORTED'] as const;

const kinds = Object.keys(ERROR_TABLE) as ErrorKind[];

describe('ERROR_TABLE against the distribution-spec', () => {
  it.each(OCI_KINDS)('%s answers with the spec status and its own code', (kind) => {
    expect(ERROR_TABLE[kind].code).toBe(kind);
    expect(ERROR_TABLE[kind].status).toBe(SPEC_STATUSES[kind]![0]);
  });

  it.each(kinds)('%s uses a known code with the status the spec gives that code', (kind) => {
    const { status, code } = ERROR_TABLE[kind];
    expect(SPEC_STATUSES[code], `code ${code} is not an OCI/Distribution error code`).toBeDefined();
    expect(SPEC_STATUSES[code]).toContain(status);
  });

  it('maps the mirror-specific kinds to the codes clients understand', () => {
    expect(ERROR_TABLE.INTERNAL).toMatchObject({ status: 500, code: 'UNKNOWN' });
    expect(ERROR_TABLE.PAGINATION_INVALID).toMatchObject({ status: 400, code: 'PAGINATION_NUMBER_INVALID' });
    expect(ERROR_TABLE.INVALID_REQUEST).toMatchObject({ status: 400, code: 'INVALID_REQUEST' });
    expect(ERROR_TABLE.BODY_TOO_LARGE).toMatchObject({ status: 413, code: 'INVALID_REQUEST' });
    expect(ERROR_TABLE.UPSTREAM_TIMEOUT).toMatchObject({ status: 504, code: 'UNAVAILABLE' });
    expect(ERROR_TABLE.UPSTREAM_AUTH_FAILED).toMatchObject({ status: 502, code: 'UNAVAILABLE' });
    expect(ERROR_TABLE.UPSTREAM_RATE_LIMITED).toMatchObject({ status: 503, code: 'UNAVAILABLE' });
  });
});

describe('RegistryError.getResponse', () => {
  const bodyOf = async (res: Response) => JSON.parse(await res.text()) as unknown;

  it.each(kinds)('%s renders {"errors":[{code, message}]} with its status and a JSON content type', async (kind) => {
    const res = new RegistryError(kind, `what went wrong (${kind})`).getResponse();
    expect(res.status).toBe(ERROR_TABLE[kind].status);
    expect(res.headers.get('content-type')).toMatch(/^application\/json\b/);
    expect(await bodyOf(res)).toEqual({ errors: [{ code: ERROR_TABLE[kind].code, message: `what went wrong (${kind})` }] });
  });

  it('uses the table message when none is given', async () => {
    expect(await bodyOf(new RegistryError('BLOB_UNKNOWN').getResponse())).toEqual({ errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown to registry' }] });
  });

  it('includes detail when present', async () => {
    const res = new RegistryError('NAME_UNKNOWN', undefined, { detail: { name: 'a/b' } }).getResponse();
    expect(await bodyOf(res)).toEqual({ errors: [{ code: 'NAME_UNKNOWN', message: ERROR_TABLE.NAME_UNKNOWN.message, detail: { name: 'a/b' } }] });
  });

  it('carries its own headers and the ones given, and the JSON content type', () => {
    const res = new RegistryError('RANGE_INVALID', undefined, { headers: { 'content-range': 'bytes */10' } }).getResponse({ headers: { 'x-extra': '1' } });
    expect(res.status).toBe(416);
    expect(res.headers.get('content-range')).toBe('bytes */10');
    expect(res.headers.get('x-extra')).toBe('1');
    expect(res.headers.get('content-type')).toMatch(/^application\/json\b/);
  });

  it('has no body for HEAD', async () => {
    const res = new RegistryError('MANIFEST_UNKNOWN').getResponse({ head: true });
    expect(res.status).toBe(404);
    expect(await res.text()).toBe('');
  });

  it.each([
    ['an Error', new Error('secret-password-123')],
    ['an Error that looks like a RegistryError', Object.assign(new Error('token=secret'), { kind: 'NAME_INVALID', code: 'NAME_INVALID', status: 400 })],
    ['a string', 'boom-secret'],
    ['null', null],
    ['undefined', undefined],
    ['an object', { message: 'obj-secret' }],
  ])('RegistryError.from(%s) answers 500 UNKNOWN without its message', async (_label, thrown) => {
    const res = RegistryError.from(thrown).getResponse();
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ errors: [{ code: 'UNKNOWN', message: 'internal error' }] });
    expect(text).not.toMatch(/secret/);
  });

  it('RegistryError.from keeps a RegistryError as it is', () => {
    const e = new RegistryError('DENIED', 'no');
    expect(RegistryError.from(e)).toBe(e);
  });
});

describe('errors thrown anywhere in the app', () => {
  let fake: FakeUpstream;
  let m: TestMirror;
  beforeEach(async () => {
    fake = new FakeUpstream();
    m = await startTestMirror(fake, { env: ADMIN_ENV });
  });
  afterEach(async () => {
    await m.close();
  });

  const cases: [string, string, RequestInit, number, string][] = [
    ['a write to the registry API', '/v2/team/app/manifests/v1', { method: 'PUT', body: '{}' }, 405, 'UNSUPPORTED'],
    ['an invalid name', '/v2/Team/app/manifests/v1', {}, 400, 'NAME_INVALID'],
    ['a blob the upstream does not have', `/v2/team/app/blobs/${sha256('nothing')}`, {}, 404, 'BLOB_UNKNOWN'],
    ['an unknown endpoint under /v2', '/v2/team/app/other', {}, 404, 'NOT_FOUND'],
    ['the admin API without its token', '/admin/jobs', {}, 401, 'UNAUTHORIZED'],
    ['a malformed admin request', '/admin/warm', { method: 'POST', headers: { ...bearer(), 'content-type': 'application/json' }, body: 'no' }, 400, 'INVALID_REQUEST'],
    ['an admin job that does not exist', '/admin/jobs/nope', { headers: bearer() }, 404, 'NOT_FOUND'],
  ];
  it.each(cases)('%s renders an OCI error body, status and headers', async (_label, path, init, status, code) => {
    const res = await m.request(path, init);
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toMatch(/^application\/json\b/);
    expect(res.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
    const body = (await res.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors).toHaveLength(1);
    expect(body.errors[0]).toMatchObject({ code, message: expect.any(String) });
  });

  it('renders an unexpected failure as 500 UNKNOWN without its message', async () => {
    m.mirror.metrics.cache.get = () => {
      throw new RangeError('secret-in-a-bug');
    };
    const res = await m.request('/admin/stats', { headers: bearer() });
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ errors: [{ code: 'UNKNOWN', message: 'internal error' }] });
    expect(text).not.toContain('secret');
  });

  it('answers HEAD with the status and headers of the error and no body', async () => {
    const res = await m.request(`/v2/team/app/blobs/${sha256('nothing')}`, { method: 'HEAD' });
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toMatch(/^application\/json\b/);
    expect(await res.text()).toBe('');
  });
});
