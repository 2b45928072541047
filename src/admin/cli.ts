import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { formatBytes, listedLines } from './format.js';
import type { JobView } from './jobs.js';
import { readEvents } from './sse-client.js';
import { progressView } from './warm-progress.js';
import { listValues } from '../util/list-values.js';
import { fetchFailure } from '../util/fetch-failure.js';

export interface WarmCliOptions {
  /** The running mirror, e.g. http://127.0.0.1:5000. */
  url: string;
  token: string | undefined;
  refs: string[];
  /** A file of references, one per line; blank lines and # comments are skipped. */
  file?: string;
  /** "all" or platforms; each value may hold several, comma-separated. Default: all. */
  platforms?: string[];
  /** Also the referrers (signatures, SBOMs) of every image. */
  referrers?: boolean;
  /** Progress (bars on a terminal, plain lines otherwise) and errors. */
  stderr: NodeJS.WriteStream;
  /** The final per-image summary. */
  stdout: NodeJS.WritableStream;
}

/** Exit codes: every image warmed; some image failed; the warm could not be started or followed. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** The event stream is followed again after it breaks (a mirror restart resumes the job) this many times in a row. */
const MAX_RECONNECTS = 30;
const RECONNECT_DELAY_MS = 1000;

class CliError extends Error {
  constructor(
    message: string,
    /** The mirror may answer again soon (unreachable, restarting). */
    readonly retryable = false,
  ) {
    super(message);
  }
}

/** `acr-mirror warm`: starts a warm job on a running mirror and follows it with a progress bar per image. */
export async function warmCli(opts: WarmCliOptions): Promise<number> {
  try {
    const refs = [...opts.refs, ...(opts.file ? await refsFromFile(opts.file) : [])];
    if (refs.length === 0) throw new CliError('name images to warm (arguments or --file)');
    if (!opts.token) throw new CliError('no admin token: set ACR_MIRROR_ADMIN_TOKEN or pass --token');
    const base = opts.url.replace(/\/+$/, '');
    const headers = { authorization: `Bearer ${opts.token}` };
    const platforms = listValues(opts.platforms ?? []);
    const started = await call(base, '/admin/warm', {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({ images: refs, platforms: platforms.length === 0 || platforms.includes('all') ? 'all' : platforms, ...(opts.referrers ? { referrers: true } : {}) }),
    });
    const job = await follow(base, (await started.json()) as JobView, headers, opts.stderr);
    summarize(job, opts.stdout);
    return job.state === 'done' ? EXIT.ok : EXIT.failed;
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    opts.stderr.write(`acr-mirror warm: ${err.message}\n`);
    return EXIT.usage;
  }
}

async function refsFromFile(path: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  return listedLines(text);
}

/** A request to the mirror's admin API that must succeed; its error message otherwise. */
async function call(base: string, path: string, init: RequestInit): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, init);
  } catch (err) {
    const reason = fetchFailure(err);
    throw new CliError(`cannot reach the mirror at ${base}: ${reason}`, true);
  }
  if (res.ok) return res;
  const body = await res.text();
  let message = body.slice(0, 300);
  try {
    message = (JSON.parse(body) as { errors: { message: string }[] }).errors[0]!.message;
  } catch {
    // not an error body: quote it
  }
  if (res.status === 401) message = `the mirror refused the admin token (${message})`;
  throw new CliError(`${path}: ${res.status} ${message}`, res.status >= 500);
}

/** Follows the job's event stream to its end, showing its progress; follows again when the stream breaks. */
async function follow(base: string, job: JobView, headers: Record<string, string>, out: NodeJS.WriteStream): Promise<JobView> {
  const bars = progressView(job, out);
  try {
    for (let failures = 0; job.state === 'running'; ) {
      try {
        const res = await call(base, `/admin/jobs/${job.id}/events`, { headers });
        for await (const event of readEvents(res.body!)) {
          job = JSON.parse(event.data) as JobView;
          bars.update(job);
          failures = 0;
        }
      } catch (err) {
        // undici reports a response body cut off (the mirror stopped) as a TypeError
        const retryable = err instanceof CliError ? err.retryable : err instanceof TypeError;
        if (!retryable) throw err;
        if (++failures > MAX_RECONNECTS) throw new CliError(`lost the mirror while following job ${job.id}: ${(err as Error).message}`);
      }
      if (job.state === 'running') await sleep(RECONNECT_DELAY_MS);
    }
  } finally {
    bars.stop();
  }
  return job;
}

function summarize(job: JobView, out: NodeJS.WritableStream): void {
  const width = Math.max(...job.images.map((i) => i.ref.length));
  for (const image of job.images) {
    const details =
      image.state === 'done'
        ? [image.digest ?? '', image.platforms?.join(',') ?? '', formatBytes(image.bytesTotal)].filter(Boolean).join('  ')
        : (image.error ?? image.state);
    out.write(`${image.state.padEnd(7)} ${image.ref.padEnd(width)}  ${details}\n`);
  }
  const done = job.images.filter((i) => i.state === 'done').length;
  out.write(`warmed ${done} of ${job.images.length} images, ${formatBytes(job.bytesTotal)} (job ${job.id}: ${job.state}${job.error ? `, ${job.error}` : ''})\n`);
}
