import { MultiBar, type SingleBar } from 'cli-progress';
import { formatBytes } from './format.js';
import type { ImageState, ImageStatus, JobView } from './jobs.js';
import { type BarLine, formatBarLine, RateMeter } from './progress-line.js';

/** How `acr-mirror warm` shows a job's progress while it follows the job. */
export interface ProgressView {
  update(job: JobView): void;
  stop(): void;
}

/** Bars redrawn in place on a terminal; plain lines otherwise (a log file, a CI job). */
export function progressView(job: JobView, stream: NodeJS.WriteStream, now: () => number = Date.now): ProgressView {
  return stream.isTTY ? new ProgressBars(job, stream, now) : new ProgressLines(job, stream);
}

const ALL = 'all images';

/** One bar for the whole job and one per image, each with its speed and time remaining while it transfers. */
class ProgressBars implements ProgressView {
  readonly #multi: MultiBar;
  readonly #bars: { bar: SingleBar; meter: RateMeter }[];

  constructor(
    job: JobView,
    stream: NodeJS.WriteStream,
    private readonly now: () => number,
  ) {
    const nameWidth = Math.max(ALL.length, ...job.images.map((i) => i.ref.length));
    this.#multi = new MultiBar({
      stream,
      hideCursor: true,
      clearOnComplete: false,
      format: (_options, _params, payload: BarLine) => formatBarLine(payload, nameWidth, stream.columns || 80),
    });
    this.#bars = [job, ...job.images].map(() => ({ bar: this.#multi.create(1, 0), meter: new RateMeter() }));
    this.update(job);
  }

  update(job: JobView): void {
    const lines = [{ ...jobLine(job), name: ALL }, ...job.images.map((i) => ({ ...imageLine(i), name: i.ref }))];
    lines.forEach((line, i) => {
      const { bar, meter } = this.#bars[i]!;
      const bytesPerSecond = line.state === null ? meter.sample(line.bytesDone, this.now()) : null;
      bar.setTotal(Math.max(line.bytesTotal, 1));
      bar.update(line.bytesDone, { ...line, bytesPerSecond });
    });
  }

  stop(): void {
    this.#multi.stop();
  }
}

type Figures = Omit<BarLine, 'name' | 'bytesPerSecond'>;

const jobLine = (job: JobView): Figures => ({
  bytesDone: job.bytesDone,
  bytesTotal: job.bytesTotal,
  state: job.state === 'running' ? null : `${job.state}, ${job.images.filter((i) => i.state === 'done').length} of ${job.images.length} images`,
});

function imageLine(image: ImageStatus): Figures {
  const states: Record<ImageState, string | null> = {
    pending: 'waiting',
    running: null,
    done: `done, ${formatBytes(image.bytesTotal)}`,
    failed: `failed: ${image.error ?? ''}`,
  };
  return { bytesDone: image.bytesDone, bytesTotal: image.bytesTotal, state: states[image.state] };
}

/** A line when an image starts, finishes or fails, and one each time the whole job is another tenth further. */
class ProgressLines implements ProgressView {
  readonly #states: ImageState[];
  readonly #width: number;
  #tenths = 0;

  constructor(
    job: JobView,
    private readonly out: NodeJS.WritableStream,
  ) {
    this.#states = job.images.map(() => 'pending');
    this.#width = Math.max(ALL.length, ...job.images.map((i) => i.ref.length));
    out.write(`warming ${job.images.length} image(s) (job ${job.id})\n`);
    this.update(job);
  }

  update(job: JobView): void {
    job.images.forEach((image, i) => {
      if (image.state === this.#states[i]) return;
      this.#states[i] = image.state;
      const detail = image.state === 'failed' ? (image.error ?? '') : image.state === 'done' ? formatBytes(image.bytesTotal) : '';
      this.out.write(`${image.state.padEnd(7)} ${image.ref.padEnd(this.#width)}  ${detail}`.trimEnd() + '\n');
    });
    const tenths = job.bytesTotal ? Math.floor((job.bytesDone / job.bytesTotal) * 10) : 0;
    if (tenths <= this.#tenths) return;
    this.#tenths = tenths;
    this.out.write(`${''.padEnd(7)} ${ALL.padEnd(this.#width)}  ${tenths * 10}%, ${formatBytes(job.bytesDone)} of ${formatBytes(job.bytesTotal)}\n`);
  }

  stop(): void {}
}
