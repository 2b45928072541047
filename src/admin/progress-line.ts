import { formatBytes } from './format.js';

/** One progress bar's line: what it counts and how fast. */
export interface BarLine {
  name: string;
  bytesDone: number;
  bytesTotal: number;
  /** Shown instead of the figures when the thing is not being transferred (queued, done, failed: why). */
  state: string | null;
  /** Recent transfer rate, null until known. */
  bytesPerSecond: number | null;
}

const BAR = { min: 10, max: 30, done: '\u2588', todo: '\u2591' } as const;
/** Room kept for the figures, e.g. "28.6 MiB/95.4 MiB  2.86 MiB/s  24s left": every bar is as long, so they line up. */
const FIGURES = 39;

/**
 * The line of a bar, at most columns - 1 characters (a line as wide as the terminal wraps on some): the name
 * (shortened in the middle when long), the bar, then the percentage, bytes, speed and time remaining, or the state
 * (cut short when it does not fit).
 */
export function formatBarLine(line: BarLine, nameWidth: number, columns: number): string {
  const width = Math.max(columns, 40) - 1;
  const nameRoom = Math.min(nameWidth, Math.max(12, width - FIGURES - BAR.min - 7));
  const name = shorten(line.name, nameRoom).padEnd(nameRoom);
  const fraction = line.bytesTotal > 0 ? Math.min(line.bytesDone / line.bytesTotal, 1) : 0;
  const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
  const figures = line.state ?? [`${formatBytes(line.bytesDone)}/${formatBytes(line.bytesTotal)}`, rate(line)].filter(Boolean).join('  ');
  const barWidth = Math.min(BAR.max, Math.max(BAR.min, width - name.length - percent.length - FIGURES - 3));
  const filled = Math.round(fraction * barWidth);
  const text = `${name} ${BAR.done.repeat(filled)}${BAR.todo.repeat(barWidth - filled)} ${percent} ${figures}`;
  return text.length > width ? `${text.slice(0, width - 1)}\u2026` : text;
}

function rate(line: BarLine): string {
  const speed = line.bytesPerSecond;
  if (!speed) return '';
  const remaining = Math.max(line.bytesTotal - line.bytesDone, 0);
  return `${formatBytes(speed)}/s  ${formatDuration(remaining / speed)} left`;
}

/** 75 -> "1m15s"; 4000 -> "1h06m". */
export function formatDuration(seconds: number): string {
  const s = Math.ceil(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 100 * 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return 'days';
}

function shorten(text: string, max: number): string {
  if (text.length <= max) return text;
  const head = Math.ceil((max - 1) / 2);
  return `${text.slice(0, head)}\u2026${text.slice(text.length - (max - 1 - head))}`;
}

/** The transfer rate over the last few seconds of samples. */
export class RateMeter {
  readonly #samples: { at: number; bytes: number }[] = [];

  constructor(private readonly windowMs = 10_000) {}

  /** Records the byte count at a time; returns the rate (bytes per second), or null while it cannot be told. */
  sample(bytes: number, at: number): number | null {
    this.#samples.push({ at, bytes });
    while (this.#samples.length > 2 && at - this.#samples[1]!.at >= this.windowMs) this.#samples.shift();
    const first = this.#samples[0]!;
    const seconds = (at - first.at) / 1000;
    return seconds >= 1 && bytes > first.bytes ? (bytes - first.bytes) / seconds : null;
  }
}
