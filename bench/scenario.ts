import { setTimeout as sleep } from 'node:timers/promises';
import type { FaultProxy } from '../test/e2e/harness/fault-proxy.js';
import type { Sizes } from './options.js';
import type { Stack } from './stack.js';
import type { Check, Metric } from './stats.js';

export interface BenchContext {
  stack: Stack;
  sizes: Sizes;
  /** A progress line on stderr. */
  progress(message: string): void;
}

export interface ScenarioOutcome {
  metrics: Metric[];
  checks: Check[];
  /** What was measured and how, in a sentence or two each. */
  notes: string[];
}

export interface Scenario {
  id: number;
  title: string;
  run(ctx: BenchContext): Promise<ScenarioOutcome>;
}

export interface ScenarioResult extends ScenarioOutcome {
  id: number;
  title: string;
  seconds: number;
  /** Share of the machine's CPU used by processes outside the benchmark meanwhile (0..1). */
  othersCpu: number;
  /** Set when the scenario could not finish; its figures are then partial or missing. */
  error?: string;
}

/** Body bytes of the upstream's 2xx answers (registry and OSS fronts) recorded since the last proxy.reset(). */
export function upstreamBytes(proxy: FaultProxy): number {
  return proxy.filter((r) => r.status >= 200 && r.status < 300).reduce((n, r) => n + r.bytes, 0);
}

/**
 * Waits until the upstream has seen no new request or byte for quietMs (at most maxMs): a peer may still be
 * fetching in the background after its client is done.
 */
export async function upstreamQuiet(proxy: FaultProxy, quietMs = 500, maxMs = 30_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  const signature = () => `${proxy.records.length}/${proxy.records.reduce((n, r) => n + r.bytes, 0)}`;
  let last = signature();
  let since = Date.now();
  while (Date.now() - since < quietMs && Date.now() < deadline) {
    await sleep(50);
    const now = signature();
    if (now !== last) {
      last = now;
      since = Date.now();
    }
  }
}

/** Runs body `runs` times, in order, collecting its results. */
export async function repeat<T>(runs: number, body: (run: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < runs; i++) out.push(await body(i));
  return out;
}
