import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { extract as tarExtract, type Header } from 'tar-stream';
import type { BlobStore, BlobWriter } from '../cache/blob-store.js';
import { DigestHasher, type VerifiedDigest } from '../cache/digest.js';
import { RegistryError } from '../http/errors.js';
import { type Descriptor, manifestContent } from '../oci/manifest.js';
import { MAX_MANIFEST_BYTES } from '../oci/media-types.js';
import { bundleError } from './bundle-error.js';
import { entryDigest, INDEX_FILE, LAYOUT_FILE } from './layout.js';

export interface BundleLimits {
  /** Tar entries a bundle may have. */
  maxEntries: number;
  /** Bytes of index.json, oci-layout and each manifest. */
  maxDocument: number;
}

export const DEFAULT_LIMITS: BundleLimits = { maxEntries: 100_000, maxDocument: MAX_MANIFEST_BYTES };

/** A verified blob of the bundle, written but not committed; parked (no open file) until it is read or committed. */
export interface StagedBlob {
  writer: BlobWriter;
  verified: VerifiedDigest;
}

export interface StagingOptions {
  store: BlobStore;
  limits: BundleLimits;
  /** storage.max_size: the bundle's blobs must fit in it together. */
  maxBytes: number | null;
  /** Called with index.json as soon as it is read (before the blobs after it are staged); throws to refuse. */
  checkIndex(index: Descriptor[], digest: string): void;
  /** Filled as blobs are staged: the caller closes them whatever happens. */
  staged: Map<string, StagedBlob>;
}

/**
 * Reads an OCI image layout tar: checks oci-layout, hands index.json to checkIndex, and stages every blob entry
 * through a store writer while verifying it against its name. Refuses entries that are not regular files (or
 * directories, which are skipped), a name present twice, more entries than the limit, and blobs that together
 * would not fit in storage.max_size, each before the entry's bytes are written.
 */
export async function stageBundle(input: Readable, opts: StagingOptions): Promise<Descriptor[]> {
  let index: Descriptor[] | null = null;
  const seen = new Set<string>();
  let entries = 0;
  let announced = 0;
  const extract = tarExtract();
  input.on('error', (err) => extract.destroy(err));
  input.pipe(extract);
  try {
    for await (const entry of extract) {
      const name = entry.header.name.replace(/^\.\//, '');
      if (++entries > opts.limits.maxEntries) throw bundleError(`it has more than ${opts.limits.maxEntries} entries`);
      if (entry.header.type === 'directory') {
        entry.resume();
        continue;
      }
      checkEntry(name, entry.header, seen);
      const blob = entryDigest(name);
      if (name === LAYOUT_FILE.name) {
        checkLayout(await readAll(entry, opts.limits.maxDocument));
      } else if (name === INDEX_FILE) {
        const body = await readAll(entry, opts.limits.maxDocument);
        index = parseIndex(body);
        opts.checkIndex(index, `sha256:${createHash('sha256').update(body).digest('hex')}`);
      } else if (blob) {
        announced += entry.header.size ?? 0;
        checkCapacity(announced, opts.maxBytes, blob);
        opts.staged.set(blob, await stage(opts.store, blob, entry));
      } else {
        entry.resume();
      }
    }
  } catch (err) {
    if (err instanceof RegistryError) throw err;
    throw bundleError(`the bundle is truncated or not a tar archive (${(err as Error).message})`);
  }
  if (!index) throw bundleError(`the bundle has no ${INDEX_FILE}`);
  return index;
}

function checkEntry(name: string, header: Header, seen: Set<string>): void {
  if (header.type !== 'file') throw bundleError(`entry ${name} is a ${header.type ?? 'special file'}, not a regular file`);
  if (seen.has(name)) {
    const blob = entryDigest(name);
    throw bundleError(blob ? `blob ${blob} is in the bundle twice` : `${name} is in the bundle twice`);
  }
  seen.add(name);
}

function checkCapacity(announced: number, maxBytes: number | null, blob: string): void {
  if (maxBytes === null || announced <= maxBytes) return;
  throw bundleError(`its blobs need at least ${announced} bytes (${blob}), more than storage.max_size (${maxBytes} bytes) even after eviction`, 'BODY_TOO_LARGE');
}

function checkLayout(body: Buffer): void {
  let layout: { imageLayoutVersion?: unknown } | null;
  try {
    layout = JSON.parse(body.toString('utf8')) as { imageLayoutVersion?: unknown } | null;
  } catch {
    throw bundleError(`${LAYOUT_FILE.name} is not JSON`);
  }
  if (layout?.imageLayoutVersion !== '1.0.0') throw bundleError(`unsupported OCI layout version ${String(layout?.imageLayoutVersion)}`);
}

/** Writes an entry to a store writer while hashing it; refuses it unless it matches its name. Parks it when done. */
async function stage(store: BlobStore, digest: string, entry: AsyncIterable<unknown>): Promise<StagedBlob> {
  const writer = await store.createWriter(digest);
  const hasher = new DigestHasher(digest);
  let offset = 0;
  try {
    for await (const chunk of entry) {
      hasher.add(offset, chunk as Buffer);
      await writer.write(offset, chunk as Buffer);
      offset += (chunk as Buffer).length;
    }
    const result = hasher.verify();
    if ('actual' in result) throw bundleError(`blob ${digest} in the bundle does not match its digest (content is ${result.actual})`);
    await writer.park();
    return { writer, verified: result.verified };
  } catch (err) {
    await writer.close();
    throw err;
  }
}

/** The bytes of a staged document no larger than maxBytes (the writer is parked again afterwards). */
export async function readStaged(blob: StagedBlob, what: string, maxBytes: number): Promise<Buffer> {
  if (blob.verified.size > maxBytes) throw bundleError(`${what} is ${blob.verified.size} bytes, more than the ${maxBytes} byte limit`);
  const body = Buffer.allocUnsafe(blob.verified.size);
  for (let at = 0; at < body.length; ) {
    const n = await blob.writer.read(body.subarray(at), at);
    if (n === 0) throw new Error(`staged blob ${blob.verified.digest} ends at byte ${at}`);
    at += n;
  }
  await blob.writer.park();
  return body;
}

async function readAll(entry: AsyncIterable<unknown>, maxBytes: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let total = 0;
  for await (const chunk of entry) {
    total += (chunk as Buffer).length;
    if (total > maxBytes) throw bundleError(`a layout document is larger than ${maxBytes / 1024 / 1024} MiB`);
    parts.push(chunk as Buffer);
  }
  return Buffer.concat(parts);
}

function parseIndex(body: Buffer): Descriptor[] {
  const content = manifestContent(body, INDEX_FILE);
  if (content?.kind !== 'index') throw bundleError(`${INDEX_FILE} is not an OCI index`);
  return content.manifests;
}
