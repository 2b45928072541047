/** OSS's XML bodies: errors, listings, multipart results, and the CompleteMultipartUpload request. */

export class OssError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, string> = {},
  ) {
    super(message);
  }
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&${{ '<': 'lt', '>': 'gt', '&': 'amp', '"': 'quot', "'": 'apos' }[c]};`);
}

/** An element with escaped text content. */
export function text(name: string, value: string | number | boolean): string {
  return `<${name}>${escapeXml(String(value))}</${name}>`;
}

/** An element around already rendered children. */
export function node(name: string, ...children: string[]): string {
  return `<${name}>${children.join('')}</${name}>`;
}

export function document(root: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n${root}`;
}

export function errorXml(err: OssError, requestId: string, hostId: string): string {
  const details = Object.entries(err.details).map(([name, value]) => text(name, value));
  return document(node('Error', text('Code', err.code), text('Message', err.message), text('RequestId', requestId), text('HostId', hostId), ...details));
}

export interface RequestedPart {
  partNumber: number;
  etag: string;
}

function unescapeXml(value: string): string {
  const entities: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
  return value.replace(/&(lt|gt|amp|quot|apos);/g, (_, name: string) => entities[name]!);
}

/** The part list of a CompleteMultipartUpload body, in the order given; MalformedXML when it is not one. */
export function parseCompleteRequest(body: string): RequestedPart[] {
  const root = /<CompleteMultipartUpload>([\s\S]*)<\/CompleteMultipartUpload>/.exec(body);
  const malformed = new OssError(400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema.');
  if (!root) throw malformed;
  const parts = [...root[1]!.matchAll(/<Part>([\s\S]*?)<\/Part>/g)].map(([, inner]) => {
    const partNumber = /<PartNumber>\s*(\d+)\s*<\/PartNumber>/.exec(inner!);
    const etag = /<ETag>([^<]*)<\/ETag>/.exec(inner!);
    if (!partNumber || !etag) throw malformed;
    return { partNumber: Number(partNumber[1]), etag: unescapeXml(etag[1]!.trim()) };
  });
  if (parts.length === 0) throw malformed;
  return parts;
}
