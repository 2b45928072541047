import type { BlobStore } from '../../src/cache/blob-store.js';
import { DigestHasher } from '../../src/cache/digest.js';
import { sha256 } from './fake-upstream.js';

/** Writes blob into the store and commits it with the hasher's proof, as a fill does; its digest. */
export async function commitBlob(store: BlobStore, blob: Buffer): Promise<string> {
  const digest = sha256(blob);
  const writer = await store.createWriter(digest);
  try {
    await writer.write(0, blob);
    const hasher = new DigestHasher(digest);
    hasher.add(0, blob);
    const result = hasher.verify();
    if (!('verified' in result)) throw new Error('test blob does not match');
    await writer.commit(result.verified);
  } finally {
    await writer.close();
  }
  return digest;
}
