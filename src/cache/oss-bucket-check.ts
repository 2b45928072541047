import type { OssStorageConfig } from '../config/storage.js';
import { ossClient, ossCall, ossSettingsOf, OssStoreError } from './oss-client.js';

/** What an OSS error code means for the bucket check, in the operator's words. */
const REASONS: Record<string, string> = {
  InvalidAccessKeyId: 'access key rejected',
  SignatureDoesNotMatch: 'access key secret rejected: the signature does not match',
  InvalidSecurityToken: 'security token rejected',
  SecurityTokenExpired: 'security token expired',
  NoSuchBucket: 'no such bucket',
  AccessDenied: 'access denied: the credentials need oss:GetBucketInfo on the bucket',
  RequestTimeTooSkewed: "this machine's clock is too far off OSS's",
};

/** The endpoint a configuration reaches, as an operator would write it. */
export function ossEndpointOf(oss: Pick<OssStorageConfig, 'endpoint' | 'region' | 'internal'>): string {
  return oss.endpoint ?? `https://${oss.region}${oss.internal ? '-internal' : ''}.aliyuncs.com`;
}

export interface BucketProblem {
  /** One line naming the bucket, the endpoint and why, e.g. "OSS bucket acr-cache at https://...: access key rejected (InvalidAccessKeyId)". */
  message: string;
  /**
   * OSS answered and refused (credentials, bucket, permissions, clock): the configuration is wrong. Otherwise OSS
   * did not answer or failed (unreachable, 5xx): an outage, which the mirror rides out on its disk and the upstream.
   */
  refused: boolean;
}

/** GetBucketInfo with the configured credentials: null when the bucket answers. */
export async function checkOssBucket(oss: OssStorageConfig): Promise<BucketProblem | null> {
  const client = ossClient(ossSettingsOf(oss));
  try {
    await ossCall('GetBucketInfo', oss.bucket, '', () => client.getBucketInfo(oss.bucket));
    return null;
  } catch (err) {
    if (!(err instanceof OssStoreError)) throw err;
    const refused = err.code === 'CredentialsUnavailable' || (err.status > 0 && err.status < 500);
    return { message: `OSS bucket ${oss.bucket} at ${ossEndpointOf(oss)}: ${reasonOf(err)}`, refused };
  }
}

function reasonOf(err: OssStoreError): string {
  const known = REASONS[err.code];
  if (known) return `${known} (${err.code})`;
  if (err.code === 'CredentialsUnavailable') return err.detail;
  if (err.status <= 0) return `unreachable (${err.code})`;
  return `${err.code} (HTTP ${err.status})`;
}
