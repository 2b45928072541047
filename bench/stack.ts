import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startUpstream, type Upstream, type UpstreamOptions } from '../test/e2e/harness/upstream.js';
import { startDistributionProxy, type DistributionProxy } from './distribution-proxy.js';
import { Fixtures } from './fixtures.js';
import { startBenchMirror, type BenchMirror, type MirrorSettings } from './mirror.js';
import { startNginxStatic, type NginxStatic } from './nginx-static.js';

/** Everything a benchmark run needs, on loopback; stop() ends every process it started. */
export interface Stack {
  up: Upstream;
  nginx: NginxStatic;
  fixtures: Fixtures;
  /** A new empty directory under the run's temp dir. */
  newDir(name: string): Promise<string>;
  /** A mirror with a fresh cache, or on dataDir (kept across stop) for restart runs; of `up` unless told another. */
  startMirror(dataDir?: string, opts?: { upstream?: Upstream; settings?: MirrorSettings; env?: Record<string, string> }): Promise<BenchMirror>;
  /** Distribution in proxy mode with empty storage, of `up` unless told another. */
  startDistributionProxy(upstream?: Upstream): Promise<DistributionProxy>;
  /** Another upstream (stopped with the stack), e.g. one whose OSS is capped per connection. */
  startUpstream(opts: UpstreamOptions): Promise<Upstream>;
  stop(): Promise<void>;
}

export async function startStack(opts: { cpuProfDir: string | null }): Promise<Stack> {
  const root = await mkdtemp(join(tmpdir(), 'acr-bench-'));
  const running = new Set<{ stop(): Promise<void> }>();
  let dirs = 0;
  const newDir = async (name: string): Promise<string> => {
    const dir = join(root, `${name}-${++dirs}`);
    await mkdir(dir, { recursive: true });
    return dir;
  };
  /** Stops it with the stack if the scenario did not. */
  const tracked = <T extends { stop(): Promise<void> }>(thing: T): T => {
    running.add(thing);
    const stop = thing.stop.bind(thing);
    return { ...thing, stop: () => (running.delete(thing), stop()) };
  };
  const stopAll = async (): Promise<void> => {
    await Promise.allSettled([...running].map((t) => t.stop()));
    running.clear();
  };

  try {
    const [up, nginx] = await Promise.all([
      startUpstream().then((u) => tracked(u)),
      newDir('nginx').then((d) => startNginxStatic(d)).then((n) => tracked(n)),
    ]);
    const nodeArgs = opts.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${resolve(opts.cpuProfDir)}`] : [];
    return {
      up,
      nginx,
      fixtures: new Fixtures(up),
      newDir,
      async startMirror(dataDir, opts = {}) {
        const dir = await newDir('mirror');
        const upstream = opts.upstream ?? up;
        return tracked(
          await startBenchMirror({ dir, dataDir: dataDir ?? join(dir, 'data'), upstream, nodeArgs, ...(opts.settings ? { settings: opts.settings } : {}), ...(opts.env ? { env: opts.env } : {}) }),
        );
      },
      async startDistributionProxy(upstream = up) {
        return tracked(await startDistributionProxy(await newDir('distribution'), upstream));
      },
      async startUpstream(opts) {
        return tracked(await startUpstream(opts));
      },
      async stop() {
        await stopAll();
        await rm(root, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await stopAll();
    await rm(root, { recursive: true, force: true });
    throw err;
  }
}
