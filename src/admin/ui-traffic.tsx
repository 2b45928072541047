import { formatBytes } from './format.js';
import type { TrafficMinute } from '../observability/traffic-history.js';

const MINUTE = 60_000;
const SLOTS = 60;
/** viewBox units: the chart stretches to the page's width, its strokes do not (non-scaling-stroke). */
const WIDTH = 600;
const HEIGHT = 120;
const SLOT = WIDTH / SLOTS;
const SERVED = '#2f6fd6';
const UPSTREAM = '#e08a1e';
const RATIO = '#2e7d32';

interface Slot {
  index: number;
  minute: TrafficMinute;
}

const percent = (ratio: number | null) => (ratio === null ? '—' : `${(ratio * 100).toFixed(1)} %`);

/** Served and upstream bytes per minute (bars) and the hit ratio (line) over the last hour, as an inline SVG. */
export function TrafficChart({ minutes, now }: { minutes: TrafficMinute[]; now: number }) {
  const first = Math.floor(now / MINUTE) * MINUTE - (SLOTS - 1) * MINUTE;
  const slots = minutes
    .map((minute) => ({ index: (Date.parse(minute.at) - first) / MINUTE, minute }))
    .filter((s) => s.index >= 0 && s.index < SLOTS);
  const peak = Math.max(1, ...slots.flatMap((s) => [s.minute.served, s.minute.upstream]));
  const sum = (key: 'served' | 'upstream' | 'hits' | 'lookups') => slots.reduce((n, s) => n + s.minute[key], 0);
  const lookups = sum('lookups');
  return (
    <section id="traffic" class="chart">
      <h2>Last hour</h2>
      <p class="legend">
        <span><span class="swatch served" />served {formatBytes(sum('served'))}</span>
        <span><span class="swatch upstream" />pulled upstream {formatBytes(sum('upstream'))}</span>
        <span><span class="swatch ratio" />hit ratio {percent(lookups ? sum('hits') / lookups : null)}</span>
      </p>
      <div class="axis"><span>{formatBytes(peak)} per minute</span><span>hit ratio 100 %</span></div>
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} preserveAspectRatio="none" role="img" aria-label="bytes served and pulled upstream per minute, and the hit ratio, over the last hour">
        {slots.map((s) => <MinuteBars slot={s} peak={peak} />)}
        {ratioRuns(slots).map((run) => (
          <polyline points={ratioPoints(run)} fill="none" stroke={RATIO} stroke-width="2" vector-effect="non-scaling-stroke" />
        ))}
      </svg>
      <div class="axis"><span>60 min ago</span>{slots.length ? null : <span>no traffic recorded yet</span>}<span>now</span></div>
    </section>
  );
}

function MinuteBars({ slot, peak }: { slot: Slot; peak: number }) {
  const { minute, index } = slot;
  const height = (bytes: number) => (bytes / peak) * (HEIGHT - 4);
  const x = index * SLOT;
  const label = `${minute.at.slice(11, 16)} UTC: served ${formatBytes(minute.served)}, pulled upstream ${formatBytes(minute.upstream)}, hit ratio ${percent(minute.hitRatio)} of ${minute.lookups} lookups`;
  return (
    <g data-minute={minute.at}>
      <title>{label}</title>
      <rect x={x} y={0} width={SLOT} height={HEIGHT} fill="transparent" />
      <rect x={x + 1} y={HEIGHT - height(minute.served)} width={SLOT / 2 - 1} height={height(minute.served)} fill={SERVED} />
      <rect x={x + SLOT / 2} y={HEIGHT - height(minute.upstream)} width={SLOT / 2 - 1} height={height(minute.upstream)} fill={UPSTREAM} />
    </g>
  );
}

/** Consecutive minutes with lookups: the line breaks where there were none. */
function ratioRuns(slots: Slot[]): Slot[][] {
  const runs: Slot[][] = [];
  let previous = -2;
  for (const s of slots) {
    if (s.minute.hitRatio === null) continue;
    if (s.index === previous + 1) runs[runs.length - 1]!.push(s);
    else runs.push([s]);
    previous = s.index;
  }
  return runs;
}

/** A lone minute gets a short level stroke so it shows. */
function ratioPoints(run: Slot[]): string {
  const y = (s: Slot) => HEIGHT - 2 - s.minute.hitRatio! * (HEIGHT - 4);
  const center = (s: Slot) => s.index * SLOT + SLOT / 2;
  if (run.length === 1) return `${center(run[0]!) - SLOT / 2},${y(run[0]!)} ${center(run[0]!) + SLOT / 2},${y(run[0]!)}`;
  return run.map((s) => `${center(s)},${y(s)}`).join(' ');
}
