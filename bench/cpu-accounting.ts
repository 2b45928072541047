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
  const { processes } = await machineCpu();
  return { at: performance.now(), machine: processes, ours: await treeTicks(process.pid) / TICKS_PER_SECOND };
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
    const f = await statFields(Number(name)).catch(() => null);
    if (!f) continue;
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

/** Where CPU time went while one measurement ran. */
export interface CpuUse {
  /** Share (0..1) of the machine's capacity in use: every CPU state but idle and iowait, interrupts included. */
  busy: number;
  /** CPU seconds of the whole machine (the same states). */
  machine: number;
  /** CPU seconds of this benchmark's child processes that exited meanwhile: the clients it ran (skopeo, curl). */
  exitedChildren: number;
  /** CPU seconds of each watched process (e.g. the mirror), in the order of the pids given. */
  processes: number[];
}

/** Runs body and reports the CPU time spent meanwhile by the machine, the clients that exited and the processes given. */
export async function measureCpu<T>(pids: readonly number[], body: () => Promise<T>): Promise<{ value: T; cpu: CpuUse }> {
  const before = await cpuCounters(pids);
  const value = await body();
  const after = await cpuCounters(pids);
  const seconds = (after.at - before.at) / 1000;
  const machine = after.busy - before.busy;
  return {
    value,
    cpu: {
      busy: machine / Math.max(seconds * availableParallelism(), 1e-9),
      machine,
      exitedChildren: after.exitedChildren - before.exitedChildren,
      processes: pids.map((_, i) => after.processes[i]! - before.processes[i]!),
    },
  };
}

async function cpuCounters(pids: readonly number[]): Promise<{ at: number; busy: number; exitedChildren: number; processes: number[] }> {
  const machine = await machineCpu();
  const self = await statFields(process.pid);
  const processes = await Promise.all(pids.map(async (pid) => {
    const f = await statFields(pid);
    return (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND;
  }));
  return {
    at: performance.now(),
    busy: machine.processes + machine.interrupts,
    // cutime + cstime: children this process has waited for, i.e. the clients that have exited.
    exitedChildren: (Number(self[13]) + Number(self[14])) / TICKS_PER_SECOND,
    processes,
  };
}

/** CPU seconds since boot of the whole machine from /proc/stat: in processes (user, nice, system, and steal: taken by the hypervisor) and in interrupts. */
async function machineCpu(): Promise<{ processes: number; interrupts: number }> {
  // cpu  user nice system idle iowait irq softirq steal (guest time is already counted in user)
  const [, user, nice, system, , , irq, softirq, steal] = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!.trim().split(/\s+/).map(Number);
  return { processes: (user! + nice! + system! + steal!) / TICKS_PER_SECOND, interrupts: (irq! + softirq!) / TICKS_PER_SECOND };
}

/** The fields of /proc/<pid>/stat after "(comm) ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime ... */
async function statFields(pid: number): Promise<string[]> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
}
