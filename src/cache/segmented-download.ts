import { isNetworkError } from '../upstream/errors.js';
import type { SegmentPlan } from '../upstream/client.js';
import {
  type BlobSource,
  type DownloadOptions,
  type DownloadSink,
  type SourceAnswer,
  answeredFirst,
  blobFailure,
  bodyFrom,
  downloadBlob,
  wrapNetwork,
} from './blob-download.js';

/** Where a segmented download puts bytes: at their offset, in any order; it waits for each batch to be written. */
export interface PlacedSink {
  place(offset: number, bytes: Buffer[]): Promise<void>;
}

/** How a segmented download may place bytes, and what a failure to place them turns into. */
export interface Placing {
  /** Where segments go, asked once the size is known; null: the blob is not to be cached, take one stream. */
  placer(): PlacedSink | null;
  /** Placing failed (a disk error): the byte to go on from in one stream (a relay), or null to fail. */
  relayFrom(err: unknown): number | null;
}

/**
 * A segment's received bytes are handed to the sink once this many wait (memory per connection). With four
 * connections a fill then holds about what a one-stream fill's write batch holds; 1 MiB here raised the peak
 * memory of five concurrent cold 40 MiB fills by about 15 MiB.
 */
const BATCH = 256 * 1024;

export interface SegmentedResult {
  segments: number;
  /** The most connections open at once. */
  connections: number;
}

/**
 * Downloads a blob over several connections when its source has a segment plan and the blob is longer than one
 * segment: a bounded Range probes the upstream, and a 206 with the blob's size schedules the other segments into
 * what placing.placer() gives. Otherwise (one connection, a 200, no size, a small blob, nothing to place into) it
 * is one sequential stream into `sequential`, as downloadBlob does; so is the rest after a failure to place that
 * placing.relayFrom() turns into a relay. Resolves with the number of segments (1 for a single stream).
 */
export async function downloadSegmented(
  digest: string,
  source: BlobSource,
  sequential: DownloadSink,
  placing: Placing,
  opts: DownloadOptions,
): Promise<number> {
  const plan = source.segments;
  if (!placing.placer() || !plan || plan.connections < 2) {
    await downloadBlob(digest, source, sequential, opts);
    return 1;
  }
  const probe = await source.open({ start: 0, end: plan.segmentSize - 1 }, opts.signal);
  if (!probe.partial || probe.size === null || probe.size <= plan.segmentSize) {
    await downloadBlob(digest, answeredFirst(source, probe), sequential, opts);
    return 1;
  }
  try {
    await sequential.started(probe.size);
  } catch (err) {
    await probe.body.cancel().catch(() => {});
    throw err;
  }
  const placed = placing.placer();
  if (!placed) {
    // Not to be cached after all (no room): one stream from the start, which the relay's readers follow.
    await probe.body.cancel().catch(() => {});
    await downloadBlob(digest, source, sequential, opts);
    return 1;
  }
  try {
    const { segments, connections } = await downloadSegments(digest, source, { ...probe, size: probe.size }, plan, placed, opts);
    opts.log.debug({ digest, segments, connections }, 'blob fetched in segments');
    return segments;
  } catch (err) {
    const from = placing.relayFrom(err);
    if (from === null) throw err;
    await downloadBlob(digest, source, sequential, { ...opts, from });
    return 1;
  }
}

/**
 * Downloads a blob in bounded byte ranges (segments of plan.segmentSize, always asked for with an end) over up to
 * plan.connections connections at once. `probe` is the upstream's 206 answer for the first segment, with the
 * blob's size; connections beyond that one are taken from plan.slots, and a fill that gets none goes on with
 * fewer. A segment that breaks or ends early is resumed from the byte it reached; any other failure stops all.
 */
export async function downloadSegments(
  digest: string,
  source: BlobSource,
  probe: SourceAnswer & { size: number },
  plan: SegmentPlan,
  sink: PlacedSink,
  opts: DownloadOptions,
): Promise<SegmentedResult> {
  const size = probe.size;
  const count = Math.ceil(size / plan.segmentSize);
  const stop = new AbortController();
  const signal = AbortSignal.any([opts.signal, stop.signal]);
  let next = 1;
  let failure: unknown = null;
  let open = 1;
  let peak = 1;
  const workers: Promise<void>[] = [];

  const fetchSegment = async (index: number, first: SourceAnswer | null): Promise<void> => {
    const start = index * plan.segmentSize;
    const end = Math.min(size, start + plan.segmentSize) - 1;
    let at = start;
    for (let resumes = 0; ; resumes++) {
      const answer = first ?? (await source.open({ start: at, end }, signal));
      first = null;
      if (answer.size !== null && answer.size !== size) {
        await answer.body.cancel().catch(() => {});
        throw blobFailure(source.label, digest, 'changed size between ranges');
      }
      let batch: Buffer[] = [];
      let batched = 0;
      const flush = async () => {
        if (batched === 0) return;
        const bytes = batch;
        const offset = at - batched;
        batch = [];
        batched = 0;
        await sink.place(offset, bytes);
      };
      try {
        for await (const chunk of bodyFrom(answer, at, signal)) {
          // An upstream that sends more than the range (a 200) is cut at the segment's end.
          const bytes = chunk.byteLength > end + 1 - at ? chunk.subarray(0, end + 1 - at) : chunk;
          source.onBytes?.(bytes.byteLength);
          batch.push(bytes);
          batched += bytes.byteLength;
          at += bytes.byteLength;
          if (batched >= BATCH) await flush();
          if (at > end) break;
        }
        await flush();
      } catch (err) {
        if (!isNetworkError(err) || signal.aborted || resumes >= opts.maxResumes) throw wrapNetwork(err, source.label, digest);
        await flush();
        opts.log.warn({ digest, segment: index, offset: at, reason: (err as Error).message }, 'blob segment broke; resuming');
        continue;
      }
      if (at > end) return;
      if (resumes >= opts.maxResumes) throw blobFailure(source.label, digest, `segment ${index} ended early at byte ${at}`);
      opts.log.warn({ digest, segment: index, offset: at }, 'blob segment ended early; resuming');
    }
  };

  const work = async (index: number, first: SourceAnswer | null, slot: boolean): Promise<void> => {
    try {
      for (let segment: number | null = index; segment !== null && failure === null; segment = next < count ? next++ : null) {
        await fetchSegment(segment, first);
        first = null;
        widen();
      }
    } catch (err) {
      failure ??= err;
      stop.abort();
    } finally {
      open--;
      if (slot) plan.slots.release();
    }
  };

  /** Opens more connections while segments wait, up to the plan's number and as far as the slots allow. */
  const widen = (): void => {
    while (failure === null && open < plan.connections && next < count && plan.slots.tryAcquire()) {
      open++;
      peak = Math.max(peak, open);
      workers.push(work(next++, null, true));
    }
  };

  workers.push(work(0, probe, false));
  widen();
  for (let i = 0; i < workers.length; i++) await workers[i];
  if (failure !== null) throw failure;
  return { segments: count, connections: peak };
}
