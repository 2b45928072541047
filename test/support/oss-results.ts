import type { Listing, ListQuery, OssObject, OssUpload } from './oss-bucket.js';
import { document, node, text } from './oss-xml.js';

/** The XML answers of OSS's listing and multipart operations. */

const OWNER = node('Owner', text('ID', '1234567890'), text('DisplayName', '1234567890'));

export function listObjectsXml(bucket: string, q: ListQuery, listing: Listing): string {
  const contents = listing.objects.map(([key, o]) =>
    node('Contents', text('Key', key), text('LastModified', o.lastModified.toISOString()), text('ETag', o.etag), text('Type', o.type),
      text('Size', o.body.length), text('StorageClass', 'Standard'), OWNER));
  const prefixes = listing.prefixes.map((p) => node('CommonPrefixes', text('Prefix', p)));
  const truncated = listing.nextMarker !== null;
  return document(node('ListBucketResult', text('Name', bucket), text('Prefix', q.prefix), text('Marker', q.marker), text('MaxKeys', q.maxKeys),
    text('Delimiter', q.delimiter), text('IsTruncated', truncated), ...(truncated ? [text('NextMarker', listing.nextMarker!)] : []), ...contents, ...prefixes));
}

export function listUploadsXml(bucket: string, prefix: string, uploads: OssUpload[]): string {
  const entries = uploads.map((u) => node('Upload', text('Key', u.key), text('UploadId', u.uploadId), text('Initiated', u.initiated.toISOString())));
  return document(node('ListMultipartUploadsResult', text('Bucket', bucket), text('KeyMarker', ''), text('UploadIdMarker', ''), text('NextKeyMarker', ''),
    text('NextUploadIdMarker', ''), text('Delimiter', ''), text('Prefix', prefix), text('MaxUploads', 1000), text('IsTruncated', false), ...entries));
}

export function initiateXml(bucket: string, upload: OssUpload): string {
  return document(node('InitiateMultipartUploadResult', text('Bucket', bucket), text('Key', upload.key), text('UploadId', upload.uploadId)));
}

export function listPartsXml(bucket: string, upload: OssUpload, marker: number, maxParts: number): string {
  const numbers = [...upload.parts.keys()].filter((n) => n > marker).sort((a, b) => a - b);
  const shown = numbers.slice(0, maxParts);
  const parts = shown.map((n) => {
    const p = upload.parts.get(n)!;
    return node('Part', text('PartNumber', n), text('LastModified', p.lastModified.toISOString()), text('ETag', p.etag), text('HashCrc64ecma', p.crc64), text('Size', p.body.length));
  });
  return document(node('ListPartsResult', text('Bucket', bucket), text('Key', upload.key), text('UploadId', upload.uploadId), text('PartNumberMarker', marker),
    text('NextPartNumberMarker', shown.at(-1) ?? 0), text('MaxParts', maxParts), text('IsTruncated', numbers.length > shown.length), ...parts));
}

export function completeXml(bucket: string, key: string, object: OssObject, location: string): string {
  return document(node('CompleteMultipartUploadResult', text('Location', location), text('Bucket', bucket), text('Key', key), text('ETag', object.etag)));
}

export function bucketInfoXml(bucket: string): string {
  return document(node('BucketInfo', node('Bucket', text('Name', bucket), text('Location', 'oss-cn-hangzhou'), text('StorageClass', 'Standard'), OWNER)));
}
