import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** Runs a command to completion and collects its output; never rejects on a non-zero exit. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: opts.timeoutMs,
      killSignal: 'SIGKILL',
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => stdout.push(c));
    child.stderr.on('data', (c: Buffer) => stderr.push(c));
    child.once('error', reject);
    child.once('close', (code) =>
      resolve({ code, stdout: Buffer.concat(stdout).toString(), stderr: Buffer.concat(stderr).toString() }),
    );
  });
}

/** Like run(), but throws with the command's stderr when it fails. */
export async function runOk(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

export interface Daemon {
  readonly pid: number;
  readonly exited: boolean;
  /** SIGKILL and wait for the exit; safe to call twice. */
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
// Backstop for a test run that ends without stop() (failed hook, worker teardown): never leave daemons behind.
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** Starts a long-running process with stdout and stderr appended to logPath. */
export function startDaemon(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv, logPath: string): Daemon {
  const fd = openSync(logPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn(cmd, args, { env, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) throw new Error(`cannot start ${cmd}`);
  const pid = child.pid;
  live.add(child);
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exit.then(() => {
    exited = true;
    live.delete(child);
  });
  return {
    pid,
    get exited() {
      return exited;
    },
    async stop() {
      if (!exited) child.kill('SIGKILL');
      await exit;
    },
  };
}

/**
 * Starts a daemon that serves HTTP and waits until a GET of probe.url answers one of probe.statuses; if it exits
 * or never does, stops it and throws, quoting its log.
 */
export async function startHttpDaemon(
  what: string,
  cmd: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  logPath: string,
  probe: { url: string; statuses: readonly number[] },
): Promise<Daemon> {
  const daemon = startDaemon(cmd, args, env, logPath);
  try {
    await waitReady(what, daemon, logPath, async () => {
      const res = await fetch(probe.url, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      return probe.statuses.includes(res.status);
    });
  } catch (err) {
    await daemon.stop();
    throw err;
  }
  return daemon;
}

/** Polls until ready() is true; fails early when the daemon dies, quoting its log. */
export async function waitReady(
  what: string,
  daemon: Daemon,
  logPath: string,
  ready: () => Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (daemon.exited) throw new Error(`${what} exited during start-up:\n${tail(logPath)}`);
    if (await ready().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${timeoutMs} ms:\n${tail(logPath)}`);
    await new Promise((r) => setTimeout(r, 15));
  }
}

function tail(path: string): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-30).join('\n');
  } catch {
    return '(no log)';
  }
}
