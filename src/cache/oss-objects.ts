import type OSS from 'ali-oss';
import { NO_OSS_OBSERVER, type OssObserver } from '../observability/oss-metrics.js';
import { isAlreadyExists, isNotFound, ossCall } from './oss-client.js';

export interface ListedObject {
  key: string;
  size: number;
  /** When the object was written (OSS LastModified), ms since the epoch. */
  lastModified: number;
}

/** Plain object operations on one bucket, each an ossCall told to the observer. */
export class OssObjects {
  constructor(
    private readonly client: OSS,
    readonly bucket: string,
    private readonly observer: OssObserver = NO_OSS_OBSERVER,
  ) {}

  call<T>(operation: string, key: string, call: (client: OSS) => Promise<T>): Promise<T> {
    return ossCall(operation, this.bucket, key, () => call(this.client), this.observer);
  }

  /** Every object under prefix in key order, one ListObjects page at a time. */
  async *list(prefix: string): AsyncIterable<ListedObject> {
    let marker: string | undefined;
    do {
      const query = { prefix, 'max-keys': 1000, ...(marker === undefined ? {} : { marker }) };
      const page = await this.call('ListObjects', '', (c) => c.list(query));
      for (const o of page.objects ?? []) yield { key: o.name, size: o.size, lastModified: Date.parse(o.lastModified) };
      marker = page.isTruncated && page.nextMarker ? page.nextMarker : undefined;
    } while (marker !== undefined);
  }

  /** The object's body, or null if there is none. */
  async read(key: string): Promise<Buffer | null> {
    try {
      return (await this.call('GetObject', key, (c) => c.get(key))).content;
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  /** Puts the object unless one exists (x-oss-forbid-overwrite): false when another writer's is there. */
  async create(key: string, body: Buffer): Promise<boolean> {
    try {
      await this.call('PutObject', key, (c) => c.put(key, body, { headers: { 'x-oss-forbid-overwrite': 'true' } }));
      return true;
    } catch (err) {
      if (isAlreadyExists(err)) return false;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await this.call('DeleteObject', key, (c) => c.delete(key));
  }
}

