import { describe, expect, it } from 'vitest';
import { ERROR_TABLE, RegistryError, renderError, type ErrorKind } from '../../src/http/errors.js';

const OCI_CODES = new Set([
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
  'TOOMANYREQUESTS',
]);
const DISTRIBUTION_CODES = new Set(['UNAVAILABLE', 'UNKNOWN', 'PAGINATION_NUMBER_INVALID', 'RANGE_INVALID', 'NOT_FOUND']);

const kinds = Object.keys(ERROR_TABLE) as ErrorKind[];

describe('ERROR_TABLE', () => {
  it('is not empty', () => {
    expect(kinds.length).toBeGreaterThan(0);
  });

  it.each(kinds)('%s has an error status and a known code', (kind) => {
    const { status, code, message } = ERROR_TABLE[kind];
    expect(Number.isInteger(status)).toBe(true);
    expect(status).toBeGreaterThanOrEqual(400);
    expect(status).toBeLessThanOrEqual(599);
    expect(OCI_CODES.has(code) || DISTRIBUTION_CODES.has(code), `code ${code} is not an OCI/Distribution error code`).toBe(true);
    expect(message.length).toBeGreaterThan(0);
  });

  it.each(kinds)('RegistryError(%s) exposes the table status and code', (kind) => {
    const e = new RegistryError(kind);
    expect(e.kind).toBe(kind);
    expect(e.status).toBe(ERROR_TABLE[kind].status);
    expect(e.code).toBe(ERROR_TABLE[kind].code);
    expect(e.message).toBe(ERROR_TABLE[kind].message);
    expect(e).toBeInstanceOf(Error);
  });

  it('maps the common client errors to the statuses registries use', () => {
    expect(ERROR_TABLE.NAME_INVALID.status).toBe(400);
    expect(ERROR_TABLE.MANIFEST_UNKNOWN.status).toBe(404);
    expect(ERROR_TABLE.BLOB_UNKNOWN.status).toBe(404);
    expect(ERROR_TABLE.RANGE_INVALID.status).toBe(416);
    expect(ERROR_TABLE.INTERNAL).toMatchObject({ status: 500, code: 'UNKNOWN' });
  });
});

describe('renderError', () => {
  it('renders a RegistryError as an OCI error body', () => {
    const r = renderError(new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown: library/nginx:nope'));
    expect(r.status).toBe(404);
    expect(r.headers['content-type']).toMatch(/^application\/json\b/);
    expect(JSON.parse(r.body)).toEqual({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown: library/nginx:nope' }] });
  });

  it('uses the table message when none is given', () => {
    const r = renderError(new RegistryError('BLOB_UNKNOWN'));
    expect(JSON.parse(r.body)).toEqual({ errors: [{ code: 'BLOB_UNKNOWN', message: ERROR_TABLE.BLOB_UNKNOWN.message }] });
  });

  it('renders a kind whose code differs from its name with the code', () => {
    const r = renderError(new RegistryError('UPSTREAM_TIMEOUT', 'acr: GET manifest timed out'));
    expect(r.status).toBe(504);
    expect(JSON.parse(r.body)).toEqual({ errors: [{ code: 'UNAVAILABLE', message: 'acr: GET manifest timed out' }] });
  });

  it('includes detail when present', () => {
    const r = renderError(new RegistryError('NAME_UNKNOWN', undefined, { detail: { name: 'a/b' } }));
    expect(JSON.parse(r.body)).toEqual({ errors: [{ code: 'NAME_UNKNOWN', message: ERROR_TABLE.NAME_UNKNOWN.message, detail: { name: 'a/b' } }] });
  });

  it('carries extra headers along with the content type', () => {
    const r = renderError(
      new RegistryError('UPSTREAM_RATE_LIMITED', undefined, { headers: { 'retry-after': '120' } }),
    );
    expect(r.status).toBe(503);
    expect(r.headers['retry-after']).toBe('120');
    expect(r.headers['content-type']).toMatch(/^application\/json\b/);
  });

  it('carries Content-Range for RANGE_INVALID', () => {
    const r = renderError(new RegistryError('RANGE_INVALID', undefined, { headers: { 'content-range': 'bytes */10' } }));
    expect(r.status).toBe(416);
    expect(r.headers['content-range']).toBe('bytes */10');
  });

  it('renders an unknown Error as 500 UNKNOWN without leaking its message', () => {
    const r = renderError(new Error('secret-password-123'));
    expect(r.status).toBe(500);
    expect(r.headers['content-type']).toMatch(/^application\/json\b/);
    const body = JSON.parse(r.body) as { errors: { code: string; message: string }[] };
    expect(body.errors).toHaveLength(1);
    expect(body.errors[0]!.code).toBe('UNKNOWN');
    expect(r.body).not.toContain('secret-password-123');
    expect(JSON.stringify(r.headers)).not.toContain('secret-password-123');
  });

  it('does not leak the message of an Error subclass that merely looks like a RegistryError', () => {
    const fake = Object.assign(new Error('token=abc123'), { kind: 'NAME_INVALID', code: 'NAME_INVALID', status: 400 });
    const r = renderError(fake);
    expect(r.status).toBe(500);
    expect(r.body).not.toContain('abc123');
  });

  it.each([['a string', 'boom-secret'], ['null', null], ['undefined', undefined], ['an object', { message: 'obj-secret' }]])(
    'renders %s thrown as 500 UNKNOWN',
    (_label, thrown) => {
      const r = renderError(thrown);
      expect(r.status).toBe(500);
      expect(JSON.parse(r.body)).toMatchObject({ errors: [{ code: 'UNKNOWN' }] });
      expect(r.body).not.toMatch(/secret/);
    },
  );
});
