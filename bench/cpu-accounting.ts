import { readdir, readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

export interface CpuSnapshot {
  at: number;
  /**
   * CPU seconds since boot of the whole machine spent in processes (user, nice, system) or taken by the
   * hypervisor (steal), from /proc/stat. Interrupt time is left out: on loopback it is mostly our own traffic.
   */
  machine: number;
  /** CPU seconds of this process and all its descendants, live or reaped. */
  ours: number;
}

/** Where CPU time has gone so far: the whole machine, and this benchmark's own process tree. */
export async function cpuSnapshot(): Promise<CpuSnapshot> {
  // cpu  user nice system idle iowait irq softirq steal guest guest_nice
  const [, user, nice, system, , , , , steal] = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!.trim().split(/\s+/).map(Number);
  const machine = (user! + nice! + system! + steal!) / TICKS_PER_SECOND;
  return { at: performance.now(), machine, ours: await treeTicks(process.pid) / TICKS_PER_SECOND };
}

/**
 * Share (0..1) of the machine's CPU capacity between two snapshots used by processes outside this benchmark
 * (e.g. a test suite running at the same time): anything above a few percent skews the figures.
 */
export function othersShare(a: CpuSnapshot, b: CpuSnapshot): number {
  const capacity = ((b.at - a.at) / 1000) * availableParallelism();
  return Math.max(0, (b.machine - a.machine - (b.ours - a.ours)) / Math.max(capacity, 1e-9));
}

/** utime + stime + cutime + cstime of pid and of its live descendants (reaped ones are in their parent's cutime). */
async function treeTicks(root: number): Promise<number> {
  const stats = new Map<number, { ppid: number; ticks: number }>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => null);
    if (!stat) continue;
    // Fields after "(comm) ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
    const f = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
    stats.set(Number(name), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]) });
  }
  let total = 0;
  const pending = [root];
  const children = new Map<number, number[]>();
  for (const [pid, s] of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), pid]);
  while (pending.length) {
    const pid = pending.pop()!;
    total += stats.get(pid)?.ticks ?? 0;
    pending.push(...(children.get(pid) ?? []));
  }
  return total;
}
