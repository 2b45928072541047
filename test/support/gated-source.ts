import { pino } from 'pino';
import type { BlobStore } from '../../src/cache/blob-store.js';
import { DigestHasher, type VerifiedDigest } from '../../src/cache/digest.js';
import { Fill, type BlobSource } from '../../src/cache/fill.js';
import { sha256 } from './fake-upstream.js';

/** Serves blob in 64 KiB chunks; holds back everything from `holdAt` on until release() (when given). */
export function gatedSource(blob: Buffer, holdAt = Infinity): BlobSource & { release(): void } {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  return {
    label: 'test upstream',
    release,
    async open({ start }) {
      let at = start;
      const body = new ReadableStream<Uint8Array>({
        async pull(c) {
          if (at >= blob.length) return c.close();
          if (at >= holdAt) await gate;
          const end = Math.min(at + 64 * 1024, blob.length, at < holdAt ? holdAt : Infinity);
          c.enqueue(new Uint8Array(blob.subarray(at, end)));
          at = end;
        },
      });
      return { start, size: blob.length, body };
    },
  };
}

/** A fill of digest from source into store, without resumes. */
export const fillOf = (digest: string, source: BlobSource, store: BlobStore) =>
  new Fill(digest, source, store, { timeoutMs: 30_000, maxResumes: 0, log: pino({ level: 'silent' }) });

/** The hasher's proof for the test bytes blob. */
export function verified(blob: Buffer): VerifiedDigest {
  const hasher = new DigestHasher(sha256(blob));
  hasher.add(0, blob);
  const result = hasher.verify();
  if (!('verified' in result)) throw new Error('test blob does not match');
  return result.verified;
}
