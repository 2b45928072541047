/** The part of ali-oss 6.x (which ships no types) that the OSS blob store and the tests use. */
declare module 'ali-oss' {
  export interface OSSOptions {
    accessKeyId: string;
    accessKeySecret: string;
    /** Temporary keys' security token; with refreshSTSToken, asked for anew every refreshSTSTokenInterval ms. */
    stsToken?: string;
    refreshSTSToken?: () => Promise<{ accessKeyId: string; accessKeySecret: string; stsToken: string }>;
    refreshSTSTokenInterval?: number;
    endpoint?: string;
    region?: string;
    /** With region: the VPC-internal endpoint. */
    internal?: boolean;
    bucket?: string;
    secure?: boolean;
    cname?: boolean;
    timeout?: number | string;
    retryMax?: number;
    /** Replaces the HTTP client ali-oss sends its signed requests through. */
    urllib?: { request(url: string, params: SentRequest): Promise<unknown> };
  }
  export interface SentRequest {
    method: string;
    headers: Record<string, string>;
    content?: Buffer | string;
  }
  export interface ResponseInfo {
    status: number;
    headers: Record<string, string | undefined>;
  }
  export interface RequestOptions {
    headers?: Record<string, string>;
    meta?: Record<string, string>;
    mime?: string;
    timeout?: number;
  }
  export interface ListedObject {
    name: string;
    etag: string;
    size: number;
    lastModified: string;
    type: string;
  }
  export interface ListedPart {
    PartNumber: string;
    ETag: string;
    Size: string;
  }
  export interface RawRequest {
    method: string;
    bucket?: string;
    object?: string;
    subres?: Record<string, string | number> | string;
    content?: Buffer | string;
    mime?: string;
    headers?: Record<string, string>;
    successStatuses?: number[];
    xmlResponse?: boolean;
  }
  class OSS {
    constructor(options: OSSOptions);
    put(name: string, file: Buffer | NodeJS.ReadableStream, options?: RequestOptions): Promise<{ name: string; res: ResponseInfo }>;
    get(name: string, options?: RequestOptions): Promise<{ content: Buffer; res: ResponseInfo }>;
    getStream(name: string, options?: RequestOptions): Promise<{ stream: NodeJS.ReadableStream; res: ResponseInfo }>;
    head(name: string, options?: RequestOptions): Promise<{ status: number; meta: Record<string, string> | null; res: ResponseInfo }>;
    delete(name: string, options?: RequestOptions): Promise<{ res: ResponseInfo }>;
    list(
      query: { prefix?: string; marker?: string; 'max-keys'?: number; delimiter?: string } | null,
      options?: RequestOptions,
    ): Promise<{ objects: ListedObject[]; prefixes: string[] | null; nextMarker: string | null; isTruncated: boolean; res: ResponseInfo }>;
    getBucketInfo(name: string, options?: RequestOptions): Promise<{ bucket: { Name: string; Location: string }; res: ResponseInfo }>;
    initMultipartUpload(name: string, options?: RequestOptions): Promise<{ uploadId: string; res: ResponseInfo }>;
    uploadPart(name: string, uploadId: string, partNo: number, file: Buffer | string, start: number, end: number, options?: RequestOptions): Promise<{ etag: string; res: ResponseInfo }>;
    completeMultipartUpload(name: string, uploadId: string, parts: { number: number; etag: string }[], options?: RequestOptions): Promise<{ etag: string; res: ResponseInfo }>;
    abortMultipartUpload(name: string, uploadId: string, options?: RequestOptions): Promise<{ res: ResponseInfo }>;
    listParts(name: string, uploadId: string, query?: Record<string, string | number>, options?: RequestOptions): Promise<{ parts: ListedPart | ListedPart[]; isTruncated: string | boolean; nextPartNumberMarker?: string; res: ResponseInfo }>;
    listUploads(
      query: { prefix?: string; 'key-marker'?: string; 'upload-id-marker'?: string } | null,
      options?: RequestOptions,
    ): Promise<{ uploads: { name: string; uploadId: string; initiated: string }[]; nextKeyMarker?: string; nextUploadIdMarker?: string; isTruncated: boolean; res: ResponseInfo }>;
    /** signatureUrl after refreshSTSToken, so that temporary keys are current. */
    asyncSignatureUrl(name: string, options?: { expires?: number; method?: string; response?: Record<string, string> }): Promise<string>;
    signatureUrl(name: string, options?: { expires?: number; method?: string; response?: Record<string, string> }): string;
    /** The signed request every operation goes through (not part of ali-oss's documented API). */
    request(params: RawRequest): Promise<{ status: number; data: unknown; res: ResponseInfo }>;
  }
  export default OSS;
}
