import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type OSS from 'ali-oss';
import { isDigest } from '../oci/digest.js';
import { isManifestMediaType, MAX_MANIFEST_BYTES } from '../oci/media-types.js';
import { parseName, parseReference } from '../oci/reference.js';
import type { StoredManifest } from './manifest-store.js';
import type { OssObserver } from '../observability/oss-metrics.js';
import { bucketKeyPrefix, isAlreadyExists, isNotFound, ossCall, ossClient, type OssSettings, withRetries } from './oss-client.js';

/** What a replica last learnt from the upstream about a tag. */
export interface SharedTag {
  digest: string;
  mediaType: string;
  /** When the upstream said so (ms since the epoch, the writing replica's clock). */
  checkedAt: number;
}

export type OssManifestStoreOptions = OssSettings & {
  /** Keys live under it ("" or e.g. "mirror/"), as the blobs do. */
  prefix: string;
  /** Told of every request (the OSS metrics). */
  observer?: OssObserver;
};

/** A tag object is a few hundred bytes; anything much larger under a tag key is not one. */
const MAX_TAG_OBJECT_BYTES = 4096;
const UPSTREAM_NAME = /^[A-Za-z0-9_-]+$/;

/** An object that is there but must not be used: bytes that do not match their digest, or not a tag record. */
export class WrongSharedObject extends Error {
  constructor(
    readonly key: string,
    why: string,
  ) {
    super(`${key}: ${why}`);
    this.name = 'WrongSharedObject';
  }
}

/**
 * Manifests and tags in the OSS bucket, through ali-oss: a manifest at `<prefix>manifests/sha256/<hex>` (exact
 * upstream bytes, Content-Type its media type, put with forbid-overwrite), a tag at
 * `<prefix>tags/<upstream>/<repo>/<tag>` as JSON {digest, mediaType, checkedAt} (overwritten on every check).
 * Reads return null when there is no object; they throw WrongSharedObject for an object that must not be used
 * (a manifest is verified against its digest) and OssStoreError when OSS fails.
 */
export class OssManifestStore {
  readonly #client: OSS;
  readonly #prefix: string;

  constructor(private readonly opts: OssManifestStoreOptions) {
    this.#client = ossClient(opts);
    this.#prefix = bucketKeyPrefix(opts.prefix);
  }

  manifestKey(digest: string): string {
    return `${this.#prefix}manifests/sha256/${digest.slice('sha256:'.length)}`;
  }

  /**
   * The key of a tag, or null if a name could make keys ambiguous: upstream names have no '/', a repository
   * name is '/'-separated components that are never '.' or '..', and a tag has no '/', so the key splits one way.
   */
  tagKey(upstream: string, repo: string, tag: string): string | null {
    try {
      if (!UPSTREAM_NAME.test(upstream) || parseReference(tag).kind !== 'tag') return null;
      return `${this.#prefix}tags/${upstream}/${parseName(repo)}/${tag}`;
    } catch {
      return null;
    }
  }

  async manifest(digest: string): Promise<StoredManifest | null> {
    if (!isDigest(digest)) return null;
    const key = this.manifestKey(digest);
    const found = await this.#read(key, MAX_MANIFEST_BYTES);
    if (!found) return null;
    const actual = `sha256:${createHash('sha256').update(found.body).digest('hex')}`;
    if (actual !== digest) throw new WrongSharedObject(key, `its bytes hash to ${actual}`);
    if (!isManifestMediaType(found.contentType)) throw new WrongSharedObject(key, `Content-Type ${found.contentType} is not a manifest media type`);
    return { digest, mediaType: found.contentType, size: found.body.length, body: found.body };
  }

  /** Puts a manifest unless its key holds an object already; `replace` overwrites one found to be wrong. */
  async putManifest(m: StoredManifest, replace: boolean): Promise<void> {
    if (!isDigest(m.digest) || !isManifestMediaType(m.mediaType)) return; // other replicas would refuse it
    const key = this.manifestKey(m.digest);
    const headers: Record<string, string> = replace ? {} : { 'x-oss-forbid-overwrite': 'true' };
    const options = { mime: m.mediaType, headers };
    await withRetries(() => this.#call('PutObject', key, (c) => c.put(key, m.body, options))).catch((err: unknown) => {
      if (!isAlreadyExists(err)) throw err; // 409: the manifest is there already (its bytes are checked when read)
    });
  }

  async tag(upstream: string, repo: string, tag: string): Promise<SharedTag | null> {
    const key = this.tagKey(upstream, repo, tag);
    const found = key ? await this.#read(key, MAX_TAG_OBJECT_BYTES) : null;
    if (!found) return null;
    const record = parseTagRecord(found.body);
    if (!record) throw new WrongSharedObject(key!, 'not a tag record {digest, mediaType, checkedAt}');
    return record;
  }

  async putTag(upstream: string, repo: string, tag: string, record: SharedTag): Promise<void> {
    const key = this.tagKey(upstream, repo, tag);
    if (!key) return;
    const body = Buffer.from(JSON.stringify({ digest: record.digest, mediaType: record.mediaType, checkedAt: record.checkedAt }));
    await withRetries(() => this.#call('PutObject', key, (c) => c.put(key, body, { mime: 'application/json' })));
  }

  async deleteTag(upstream: string, repo: string, tag: string): Promise<void> {
    const key = this.tagKey(upstream, repo, tag);
    if (key) await withRetries(() => this.#call('DeleteObject', key, (c) => c.delete(key)));
  }

  #call<T>(operation: string, key: string, call: (client: OSS) => Promise<T>): Promise<T> {
    return ossCall(operation, this.opts.bucket, key, () => call(this.#client), this.opts.observer);
  }

  /** The object's bytes and Content-Type, or null if there is none; more than `cap` bytes is a wrong object. */
  async #read(key: string, cap: number): Promise<{ body: Buffer; contentType: string } | null> {
    const answer = await this.#call('GetObject', key, (c) => c.getStream(key)).catch((err: unknown) => {
      if (isNotFound(err)) return null;
      throw err;
    });
    if (!answer) return null;
    const stream = answer.stream as Readable & { setTimeout?(ms: number, onTimeout: () => void): void };
    const declared = Number(answer.res.headers['content-length']);
    if (declared > cap) {
      stream.destroy();
      throw new WrongSharedObject(key, `${declared} bytes, more than the ${cap} such an object has at most`);
    }
    // ali-oss times out a streamed GET only until its headers.
    stream.setTimeout?.(this.opts.timeoutMs, () => stream.destroy(new Error(`OSS GetObject ${this.opts.bucket}/${key}: no bytes for ${this.opts.timeoutMs} ms`)));
    const chunks: Buffer[] = [];
    let received = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      received += chunk.length;
      if (received > cap) {
        stream.destroy();
        throw new WrongSharedObject(key, `more than the ${cap} bytes such an object has at most`);
      }
      chunks.push(chunk);
    }
    if (Number.isFinite(declared) && received !== declared) throw new Error(`OSS GetObject ${this.opts.bucket}/${key}: the body ended after ${received} of ${declared} bytes`);
    return { body: Buffer.concat(chunks, received), contentType: answer.res.headers['content-type'] ?? '' };
  }
}

function parseTagRecord(body: Buffer): SharedTag | null {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return null;
  }
  const r = (value ?? {}) as Partial<Record<keyof SharedTag, unknown>>;
  if (!isDigest(r.digest) || typeof r.mediaType !== 'string' || !isManifestMediaType(r.mediaType)) return null;
  if (typeof r.checkedAt !== 'number' || !Number.isFinite(r.checkedAt) || r.checkedAt <= 0) return null;
  return { digest: r.digest, mediaType: r.mediaType, checkedAt: r.checkedAt };
}
