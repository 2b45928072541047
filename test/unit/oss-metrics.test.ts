import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Metrics } from '../../src/observability/metrics.js';
import { ossObserver } from '../../src/observability/oss-metrics.js';
import { commitBlob } from '../support/commit-blob.js';
import { randomBlob, sha256 } from '../support/fake-upstream.js';
import { ossStoreFixture, type OssStoreFixture } from '../support/oss-store.js';

let f: OssStoreFixture;
beforeEach(async () => {
  f = await ossStoreFixture();
});
afterEach(() => f.cleanup());

const lines = async (metrics: Metrics) => (await metrics.text()).split('\n').filter((l) => l.startsWith('acr_mirror_oss_'));

describe('OSS metrics', () => {
  it('counts requests by operation and result, errors by OSS code, body bytes each way, and times each request', async () => {
    const metrics = new Metrics();
    const store = f.newStore({ observer: ossObserver(metrics) });
    f.oss.faults.failNext(1, (r) => r.operation === 'UploadPart');
    const blob = randomBlob(250 * 1024, 7); // three parts of 100 KiB: 100, 100, 50
    const digest = await commitBlob(store, blob);
    const reader = (await store.open(digest))!;
    const chunks: Buffer[] = [];
    for await (const chunk of reader.stream()) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).equals(blob)).toBe(true);
    expect(await store.stat(sha256(Buffer.from('not in the bucket')))).toBeNull();

    const got = await lines(metrics);
    expect(got).toEqual(expect.arrayContaining([
      'acr_mirror_oss_requests_total{operation="InitiateMultipartUpload",result="ok"} 1',
      'acr_mirror_oss_requests_total{operation="UploadPart",result="error"} 1',
      'acr_mirror_oss_requests_total{operation="UploadPart",result="ok"} 3',
      'acr_mirror_oss_requests_total{operation="CompleteMultipartUpload",result="ok"} 1',
      'acr_mirror_oss_requests_total{operation="HeadObject",result="ok"} 1',
      'acr_mirror_oss_requests_total{operation="HeadObject",result="not_found"} 1',
      'acr_mirror_oss_requests_total{operation="GetObject",result="ok"} 1',
      'acr_mirror_oss_errors_total{operation="UploadPart",code="InternalError"} 1',
      `acr_mirror_oss_bytes_total{direction="sent"} ${blob.length}`,
      `acr_mirror_oss_bytes_total{direction="received"} ${blob.length}`,
      'acr_mirror_oss_request_duration_seconds_count{operation="UploadPart"} 4',
      'acr_mirror_oss_request_duration_seconds_count{operation="GetObject"} 1',
    ]));
    // A miss is no error; nothing names a key or a request id.
    expect(got.filter((l) => l.startsWith('acr_mirror_oss_errors_total{'))).toEqual(['acr_mirror_oss_errors_total{operation="UploadPart",code="InternalError"} 1']);
    expect(got.join('\n')).not.toContain(digest.slice(7));
  });

  it('readiness asks the bucket with a bounded wait: a bucket that does not answer is reported, not waited for', async () => {
    await f.store.probe();
    f.oss.faults.stallNext(1, (r) => r.operation === 'GetBucketInfo');
    await expect(f.store.probe()).rejects.toThrow('no answer within 3000 ms');
  });
});
