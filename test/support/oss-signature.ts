import { createHmac, timingSafeEqual } from 'node:crypto';
import { OssError } from './oss-xml.js';

/**
 * The query parameters OSS puts into the V1 canonical resource (its documented sub-resource list). Any other
 * parameter (prefix, marker, max-keys...) is not signed, so a client that signs one of those is refused.
 */
const SIGNED_SUBRESOURCES = new Set([
  'acl', 'uploads', 'location', 'cors', 'logging', 'website', 'referer', 'lifecycle', 'delete', 'append', 'tagging',
  'objectMeta', 'uploadId', 'partNumber', 'security-token', 'position', 'img', 'style', 'styleName', 'replication',
  'replicationProgress', 'replicationLocation', 'cname', 'bucketInfo', 'comp', 'qos', 'live', 'status', 'vod',
  'startTime', 'endTime', 'symlink', 'x-oss-process', 'response-content-type', 'response-content-language',
  'response-expires', 'response-cache-control', 'response-content-disposition', 'response-content-encoding',
  'udf', 'udfName', 'udfImage', 'udfId', 'udfImageDesc', 'udfApplication', 'udfApplicationLog', 'restore',
  'callback', 'callback-var', 'qosInfo', 'policy', 'stat', 'encryption', 'versions', 'versioning', 'versionId',
  'requestPayment', 'x-oss-request-payer', 'sequential', 'inventory', 'inventoryId', 'continuation-token',
  'asyncFetch', 'worm', 'wormId', 'wormExtend', 'x-oss-traffic-limit', 'transferAcceleration', 'regionList',
  'metaQuery', 'resourceGroup', 'x-oss-async-process',
]);

const MAX_SKEW_MS = 15 * 60 * 1000;

export interface SignedRequest {
  method: string;
  headers: Headers;
  query: URLSearchParams;
  bucket: string;
  key: string;
}

export function canonicalResource(bucket: string, key: string, query: URLSearchParams): string {
  const names = [...new Set(query.keys())].filter((name) => SIGNED_SUBRESOURCES.has(name)).sort();
  const signed = names.map((name) => {
    const value = query.get(name) ?? '';
    return value === '' ? name : `${name}=${value}`;
  });
  return `/${bucket}/${key}${signed.length > 0 ? `?${signed.join('&')}` : ''}`;
}

/** VERB, Content-MD5, Content-Type, date (or Expires), the sorted x-oss-* headers, the canonical resource. */
export function stringToSign(req: SignedRequest, dateLine: string): string {
  const ossHeaders = [...req.headers.entries()]
    .filter(([name]) => name.startsWith('x-oss-'))
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, value]) => `${name}:${value.trim()}\n`)
    .join('');
  const md5 = req.headers.get('content-md5') ?? '';
  const type = req.headers.get('content-type') ?? '';
  return `${req.method}\n${md5}\n${type}\n${dateLine}\n${ossHeaders}${canonicalResource(req.bucket, req.key, req.query)}`;
}

function sign(secret: string, text: string): string {
  return createHmac('sha1', secret).update(text, 'utf8').digest('base64');
}

function checkSignature(secret: string, text: string, provided: string): void {
  const expected = Buffer.from(sign(secret, text));
  const given = Buffer.from(provided);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
    throw new OssError(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.', { StringToSign: text });
  }
}

/** The key pairs the server accepts; temporary ones (STS) only with their security token. */
export class OssKeyring {
  readonly #secrets: Map<string, string>;
  readonly #tokens = new Map<string, string>();

  constructor(secrets: Record<string, string>) {
    this.#secrets = new Map(Object.entries(secrets));
  }

  grant(accessKeyId: string, accessKeySecret: string, securityToken?: string): void {
    this.#secrets.set(accessKeyId, accessKeySecret);
    if (securityToken !== undefined) this.#tokens.set(accessKeyId, securityToken);
  }

  revoke(accessKeyId: string): void {
    this.#secrets.delete(accessKeyId);
    this.#tokens.delete(accessKeyId);
  }

  /** The key's secret, once the request carries the key's security token if it has one. */
  secretOf(accessKeyId: string, req: SignedRequest): string {
    const secret = this.#secrets.get(accessKeyId);
    if (secret === undefined) {
      throw new OssError(403, 'InvalidAccessKeyId', 'The OSS Access Key Id you provided does not exist in our records.', { OSSAccessKeyId: accessKeyId });
    }
    const token = this.#tokens.get(accessKeyId);
    if (token !== undefined && (req.headers.get('x-oss-security-token') ?? req.query.get('security-token')) !== token) {
      throw new OssError(403, 'InvalidSecurityToken', 'The security token you provided is invalid.');
    }
    return secret;
  }
}

/** Verifies `Authorization: OSS ak:signature` or a presigned URL (OSSAccessKeyId, Expires, Signature) as OSS does. */
export function verifyRequest(req: SignedRequest, keyring: OssKeyring, nowMs: number): void {
  const authorization = req.headers.get('authorization');
  if (authorization !== null) return verifyHeader(req, authorization, keyring, nowMs);
  const accessKeyId = req.query.get('OSSAccessKeyId');
  const expires = req.query.get('Expires');
  const signature = req.query.get('Signature');
  if (accessKeyId !== null && expires !== null && signature !== null) {
    const secret = keyring.secretOf(accessKeyId, req);
    if (!/^\d+$/.test(expires) || Number(expires) * 1000 < nowMs) {
      throw new OssError(403, 'AccessDenied', 'Request has expired.', { Expires: expires, ServerTime: new Date(nowMs).toISOString() });
    }
    return checkSignature(secret, stringToSign(req, expires), signature);
  }
  throw new OssError(403, 'AccessDenied', 'You have no right to access this object because of bucket acl.');
}

function verifyHeader(req: SignedRequest, authorization: string, keyring: OssKeyring, nowMs: number): void {
  const match = /^OSS ([^:\s]+):(\S+)$/.exec(authorization);
  if (!match) throw new OssError(400, 'InvalidArgument', 'Authorization header is invalid (this server verifies V1 signatures only).');
  const secret = keyring.secretOf(match[1]!, req);
  const dateLine = req.headers.get('x-oss-date') ?? req.headers.get('date');
  if (dateLine === null) throw new OssError(403, 'AccessDenied', 'OSS authentication requires a valid Date.');
  const sentAt = Date.parse(dateLine);
  if (Number.isNaN(sentAt)) throw new OssError(403, 'AccessDenied', 'OSS authentication requires a valid Date.');
  if (Math.abs(nowMs - sentAt) > MAX_SKEW_MS) {
    throw new OssError(403, 'RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.', { RequestTime: dateLine, ServerTime: new Date(nowMs).toUTCString() });
  }
  checkSignature(secret, stringToSign(req, dateLine), match[2]!);
}

export function isSignedSubresource(name: string): boolean {
  return SIGNED_SUBRESOURCES.has(name);
}
