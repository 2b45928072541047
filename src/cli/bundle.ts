import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, rename, rm, stat } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Presets, SingleBar } from 'cli-progress';
import { formatBytes, listedLines } from '../admin/format.js';
import type { ImportReport } from '../bundle/import.js';
import { parseIncompleteHeader, platformsOf } from '../bundle/platforms.js';
import { listValues } from '../util/list-values.js';
import { fetchFailure } from '../util/fetch-failure.js';

export interface BundleCliOptions {
  /** The running mirror, e.g. http://127.0.0.1:5000. */
  url: string;
  token?: string | undefined;
  stderr: NodeJS.WriteStream;
  stdout: NodeJS.WritableStream;
}

type ExportCliOptions = BundleCliOptions & { refs: string[]; platforms: string[]; referrers?: boolean; output: string };

/** `acr-mirror export`: asks a running mirror for a bundle of the images (warming what is missing) and saves it. */
export function exportCli(opts: ExportCliOptions): Promise<number> {
  return unlessUnreachable(opts, 'export', () => exportBundle(opts));
}

async function exportBundle(opts: ExportCliOptions): Promise<number> {
  if (opts.refs.length === 0) return usage(opts, 'export', 'name the images to export');
  if (!opts.token) return usage(opts, 'export', 'no admin token: set ACR_MIRROR_ADMIN_TOKEN or pass --token');
  const platforms = listValues(opts.platforms);
  opts.stderr.write(`exporting ${opts.refs.length} image(s); missing content is fetched first...\n`);
  const res = await request(opts, '/admin/export', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ images: opts.refs, platforms: platforms.length === 0 || platforms.includes('all') ? 'all' : platforms, ...(opts.referrers ? { referrers: true } : {}) }),
  });
  if (!res.ok) return fail(opts, 'export', await errorText(res));
  const total = Number(res.headers.get('content-length') ?? 0);
  const bar = progress(opts, total);
  const partial = `${opts.output}.partial`;
  try {
    await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>), counting(bar), createWriteStream(partial));
    await rename(partial, opts.output);
  } catch (err) {
    await rm(partial, { force: true });
    return fail(opts, 'export', `the bundle transfer broke: ${(err as Error).message}`);
  } finally {
    bar?.stop();
  }
  const indexDigest = res.headers.get('x-bundle-index-digest');
  opts.stdout.write(`wrote ${opts.output} (${formatBytes(total)}, ${res.headers.get('x-bundle-images')} image(s))\n`);
  const held = res.headers.get('x-bundle-platforms');
  writePlatforms(opts, held ? held.split(',') : [], parseIncompleteHeader(res.headers.get('x-bundle-incomplete')));
  opts.stdout.write(`index.json ${indexDigest}: give it to the importer for acr-mirror import --expect-digest ${indexDigest}\n`);
  return 0;
}

export interface ImportCliOptions extends BundleCliOptions {
  file: string;
  /** Repositories the bundle may add (each value may hold several, comma-separated). */
  names: string[];
  /** A file of such names, one a line. */
  namesFrom?: string | undefined;
  replace: boolean;
  expectDigest?: string | undefined;
}

/** `acr-mirror import`: sends a bundle to a running mirror, which verifies it and adds its images if allowed. */
export function importCli(opts: ImportCliOptions): Promise<number> {
  return unlessUnreachable(opts, 'import', () => importBundle(opts));
}

async function importBundle(opts: ImportCliOptions): Promise<number> {
  if (!opts.token) return usage(opts, 'import', 'no admin token: set ACR_MIRROR_ADMIN_TOKEN or pass --token');
  let size: number;
  const names = listValues(opts.names);
  try {
    if (opts.namesFrom) names.push(...listedLines(await readFile(opts.namesFrom, 'utf8')));
    size = (await stat(opts.file)).size;
  } catch (err) {
    return usage(opts, 'import', `cannot read ${(err as NodeJS.ErrnoException).path ?? opts.file}: ${(err as NodeJS.ErrnoException).code}`);
  }
  if (names.length === 0) return usage(opts, 'import', 'name the repositories the bundle may add: --name <repository> (repeatable) or --names-from <file>');
  const query = new URLSearchParams(names.map((n) => ['names', n]));
  if (opts.replace) query.set('replace', 'true');
  if (opts.expectDigest) query.set('expect_digest', opts.expectDigest);
  const bar = progress(opts, size);
  const body = Readable.toWeb(createReadStream(opts.file).pipe(counting(bar))) as ReadableStream<Uint8Array>;
  const res = await request(opts, `/admin/import?${query}`, { method: 'POST', headers: { 'content-type': 'application/x-tar' }, body, duplex: 'half' } as RequestInit).finally(() =>
    bar?.stop(),
  );
  if (!res.ok) return fail(opts, 'import', await errorText(res));
  const report = (await res.json()) as ImportReport;
  opts.stdout.write(`imported ${report.images.join(', ')}: ${report.blobs} blob(s), ${formatBytes(report.bytes)} (index.json ${report.indexDigest})\n`);
  for (const image of report.added) {
    const platforms = image.platforms.length ? `, platforms ${image.platforms.join(', ')}` : '';
    opts.stdout.write(`  cached    ${image.name} for upstream ${image.upstream}, repository ${image.repository}: ${image.digest}${platforms}\n`);
  }
  for (const tag of report.tags) {
    const change = tag.change === 'replaced' ? `${tag.old} -> ${tag.new}` : tag.change === 'added' ? `-> ${tag.new}` : tag.new;
    opts.stdout.write(`  ${tag.change.padEnd(9)} ${tag.image} ${change}\n`);
  }
  writePlatforms(opts, platformsOf(report.added), report.added.filter((i) => i.left.length > 0));
  return 0;
}

class MirrorUnreachable extends Error {}

async function request(opts: BundleCliOptions, path: string, init: RequestInit): Promise<Response> {
  const base = opts.url.replace(/\/+$/, '');
  try {
    return await fetch(`${base}${path}`, { ...init, headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${opts.token}` } });
  } catch (err) {
    const reason = fetchFailure(err);
    throw new MirrorUnreachable(`cannot reach the mirror at ${base}: ${reason}`);
  }
}

/** Runs a command; a mirror that cannot be reached is a failure (exit status 1) with one line saying so. */
async function unlessUnreachable(opts: BundleCliOptions, command: string, run: () => Promise<number>): Promise<number> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof MirrorUnreachable) return fail(opts, command, err.message);
    throw err;
  }
}

function progress(opts: BundleCliOptions, total: number): SingleBar | null {
  if (!opts.stderr.isTTY || !total) return null;
  const bar = new SingleBar({ format: '{bar} {percentage}% {done} / {size}', stream: opts.stderr, hideCursor: true }, Presets.shades_classic);
  bar.start(total, 0, { done: formatBytes(0), size: formatBytes(total) });
  return bar;
}

function counting(bar: SingleBar | null): Transform {
  let done = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      done += chunk.length;
      bar?.update(done, { done: formatBytes(done) });
      cb(null, chunk);
    },
  });
}

async function errorText(res: Response): Promise<string> {
  const text = await res.text();
  try {
    return (JSON.parse(text) as { errors: { message: string }[] }).errors.map((e) => e.message).join('; ');
  } catch {
    return `${res.status} ${text.slice(0, 200)}`;
  }
}

/** Which platforms the bundle holds, and a warning for each index it holds only in part. */
function writePlatforms(opts: BundleCliOptions, platforms: string[], incomplete: { name: string; left: string[] }[]): void {
  opts.stdout.write(`platforms in the bundle: ${platforms.length ? platforms.join(', ') : 'not listed (single-platform images)'}\n`);
  for (const { name, left } of incomplete) {
    opts.stderr.write(
      `warning: ${name} is incomplete: its index also lists ${left.join(', ')}, which the bundle does not hold; ` +
        `a client on ${left.length > 1 ? 'those platforms' : 'that platform'} cannot pull it from the mirror the bundle is imported into\n`,
    );
  }
}

/** The mirror refused, or the transfer failed: exit status 1. */
function fail(opts: BundleCliOptions, command: string, message: string): number {
  opts.stderr.write(`acr-mirror ${command}: ${message}\n`);
  return 1;
}

/** The command was not given what it needs (an option, a readable file, a token): exit status 2, like every usage error. */
function usage(opts: BundleCliOptions, command: string, message: string): number {
  fail(opts, command, message);
  return 2;
}
