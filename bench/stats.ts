/** One measured quantity over several runs. */
export interface Metric {
  name: string;
  unit: string;
  runs: number[];
  median: number;
  min: number;
  max: number;
}

/** A target from the issue, evaluated on this run's figures. */
export interface Check {
  target: string;
  measured: string;
  pass: boolean;
}

export function metric(name: string, unit: string, runs: readonly number[]): Metric {
  if (runs.length === 0) throw new Error(`no runs for ${name}`);
  return { name, unit, runs: [...runs], median: median(runs), min: Math.min(...runs), max: Math.max(...runs) };
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Value at quantile q (0..1) by nearest rank. */
export function quantile(values: readonly number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

export function ratio(a: Metric, b: Metric): number {
  return a.median / b.median;
}

export function atLeast(target: string, value: number, bound: number, unit = 'x'): Check {
  return { target, measured: `${fmt(value)}${unit}`, pass: value >= bound };
}

export function atMost(target: string, value: number, bound: number, unit = 'x'): Check {
  return { target, measured: `${fmt(value)}${unit}`, pass: value <= bound };
}

export function below(target: string, value: number, bound: number, unit: string): Check {
  return { target, measured: `${fmt(value)} ${unit}`, pass: value < bound };
}

/** Three significant digits, no exponent. */
export function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const abs = Math.abs(n);
  if (abs >= 100) return Math.round(n).toLocaleString('en-US');
  if (abs >= 10) return n.toFixed(1);
  if (abs >= 1) return n.toFixed(2);
  return n.toPrecision(3);
}

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;
