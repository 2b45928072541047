import { Agent, request } from 'node:http';
import { rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import { run } from '../test/e2e/harness/proc.js';
import type { LoadJob, LoadReport } from './load-generator.js';
import type { Skopeo } from '../test/e2e/harness/skopeo.js';

interface Download {
  status: number;
  bytes: number;
}

export interface Downloads {
  wallMs: number;
  /** Bytes received by all clients together. */
  bytes: number;
}

/** `clients` concurrent curl processes each GETting url to /dev/null; every one must get `expectBytes` with 200. */
export async function downloadConcurrently(url: string, clients: number, expectBytes: number, timeoutMs: number): Promise<Downloads> {
  const started = performance.now();
  const results = await Promise.all(Array.from({ length: clients }, () => curlGet(url, timeoutMs)));
  const wallMs = performance.now() - started;
  for (const r of results) {
    if (r.status !== 200 || r.bytes !== expectBytes) {
      throw new Error(`GET ${url}: status ${r.status}, ${r.bytes} bytes (expected 200, ${expectBytes} bytes)`);
    }
  }
  return { wallMs, bytes: results.reduce((n, r) => n + r.bytes, 0) };
}

async function curlGet(url: string, timeoutMs: number): Promise<Download> {
  const r = await run('curl', ['-sS', '-o', '/dev/null', '--max-time', String(Math.ceil(timeoutMs / 1000)), '-w', '%{http_code} %{size_download}', url], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    timeoutMs: Math.ceil(timeoutMs) + 5_000,
  });
  const [status, bytes] = r.stdout.trim().split(' ').map(Number);
  if (r.code !== 0 && !status) throw new Error(`curl ${url} exited ${r.code}: ${r.stderr}`);
  return { status: status ?? 0, bytes: bytes ?? 0 };
}

export interface PullOptions {
  /** host:port of the registry to pull from (plain HTTP). */
  host: string;
  repo: string;
  tag: string;
  /** Where the dir: copy goes; removed afterwards. */
  out: string;
  creds?: { username: string; password: string };
  timeoutMs: number;
}

/** `skopeo copy docker://... dir:...`; resolves with the wall time in ms, throws if skopeo fails. */
export async function skopeoPull(skopeo: Skopeo, o: PullOptions): Promise<number> {
  const args = ['copy', '--quiet', '--src-tls-verify=false'];
  if (o.creds) args.push('--src-creds', `${o.creds.username}:${o.creds.password}`);
  args.push(`docker://${o.host}/${o.repo}:${o.tag}`, `dir:${o.out}`);
  const started = performance.now();
  const r = await skopeo(args, { timeoutMs: Math.ceil(o.timeoutMs) });
  const ms = performance.now() - started;
  await rm(o.out, { recursive: true, force: true });
  if (r.code !== 0) throw new Error(`skopeo pull of ${o.repo}:${o.tag} from ${o.host} failed (${r.code}):\n${r.stderr}`);
  return ms;
}

export interface LoadResult {
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
}

const LOAD_GENERATOR = resolve(import.meta.dirname, 'load-generator.ts');

/** bench/load-generator.ts in a child process (so it shares no event loop with the fault proxy); any non-2xx fails. */
export async function loadTest(job: LoadJob): Promise<LoadResult> {
  const r = await run(process.execPath, ['--import', 'tsx', LOAD_GENERATOR, JSON.stringify(job)], { timeoutMs: (job.seconds + 40) * 1000 });
  if (r.code !== 0) throw new Error(`load generator exited ${r.code}: ${r.stderr}`);
  const out = JSON.parse(r.stdout) as LoadReport;
  const bad = Object.entries(out.statuses).filter(([status]) => !status.startsWith('2'));
  if (out.errors.length || bad.length || out.requests === 0) {
    throw new Error(`${job.method} ${job.url}: ${out.requests} requests, statuses ${JSON.stringify(out.statuses)}, errors ${out.errors.join('; ')}`);
  }
  return { requestsPerSec: out.requests / out.seconds, p50Ms: out.p50Ms, p99Ms: out.p99Ms };
}

/** Sequential GETs over one keep-alive connection; the latency of each, in ms. */
export async function sequentialLatencies(urls: readonly string[], headers: Record<string, string>): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const out: number[] = [];
  try {
    for (const url of urls) {
      const started = performance.now();
      const status = await new Promise<number>((resolveStatus, reject) => {
        const req = request(url, { agent, headers, timeout: 10_000 }, (res) => {
          res.resume();
          res.once('end', () => resolveStatus(res.statusCode ?? 0));
          res.once('error', reject);
        });
        req.once('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
        req.once('error', reject);
        req.end();
      });
      out.push(performance.now() - started);
      if (status !== 200) throw new Error(`GET ${url}: ${status}`);
    }
  } finally {
    agent.destroy();
  }
  return out;
}
