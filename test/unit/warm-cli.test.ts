// acr-mirror warm as an operator sees it: without a terminal (the built CLI against a mirror in this process) plain
// progress lines; on a terminal, bars that fit its width with speed and time remaining.
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { JobView } from '../../src/admin/jobs.js';
import { formatBarLine, RateMeter } from '../../src/admin/progress-line.js';
import { progressView } from '../../src/admin/warm-progress.js';
import { FakeUpstream, makeImage } from '../support/fake-upstream.js';
import { serveMirror, type ServedMirror } from '../support/cli.js';

let mirror: ServedMirror | undefined;
afterEach(async () => {
  await mirror?.close();
  mirror = undefined;
});

const MiB = 1024 * 1024;

describe('acr-mirror warm without a terminal', () => {
  it('prints plain progress lines: no bars, no placeholders, each image as it finishes or fails', async () => {
    const fake = new FakeUpstream();
    fake.add(makeImage('team/app', 'v1', [3000, 5000], 1));
    mirror = await serveMirror(fake);
    const r = await mirror.cli(['warm', 'team/app:v1', 'team/absent:1']);
    expect(r.code, r.stderr).toBe(1);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^warming 2 image\(s\) \(job [0-9a-f]+\)$/);
    expect(lines).toContain('done    team/app:v1    7.86 KiB');
    expect(lines).toContainEqual(expect.stringMatching(/^failed  team\/absent:1  manifest 1 not found in team\/absent/));
    for (const line of lines.slice(1)) expect(line).toMatch(/^(running|done   |failed ) \S+( +\S.*)?$|^ {8}all images +\d+%, \S+ \S+ of \S+ \S+$/);
    expect(r.stderr).not.toMatch(/[{}\u2588\u2591\r\x1b]/);
    expect(r.stdout).toMatch(/^warmed 1 of 2 images, 7.86 KiB \(job [0-9a-f]+: failed\)$/m);
  });
});

describe('acr-mirror warm on a terminal', () => {
  const line = { name: 'team/app:v1', bytesDone: 40 * MiB, bytesTotal: 100 * MiB, state: null, bytesPerSecond: 2 * MiB };

  it('a bar line shows percentage, bytes, speed and time remaining, and fits the terminal', () => {
    const text = formatBarLine(line, 'all images'.length + 1, 80);
    expect(text).toMatch(/^team\/app:v1 +[\u2588]+[\u2591]+  40% 40\.0 MiB\/100 MiB {2}2\.00 MiB\/s {2}30s left$/);
    expect(text.length).toBeLessThan(80);
  });

  it('long names, large sizes, slow speeds and long errors still fit 80 columns (and narrower ones)', () => {
    const lines = [
      { ...line, name: 'registry-vpc.cn-hangzhou.example/some-team/a-very-long-repository-name:v1.2.3-rc.4' },
      { ...line, bytesDone: 999 * 1024 * MiB, bytesTotal: 1023 * 1024 * MiB, bytesPerSecond: 1000 },
      { ...line, state: `failed: ${'the upstream answered something long '.repeat(5)}` },
      { ...line, state: 'waiting', bytesDone: 0, bytesTotal: 0 },
    ];
    for (const columns of [80, 60]) {
      for (const l of lines) expect(formatBarLine(l, 90, columns).length, formatBarLine(l, 90, columns)).toBeLessThan(columns);
    }
    expect(formatBarLine(lines[0]!, 90, 80)).toMatch(/^registry-vp\u2026v1\.2\.3-rc\.4 \u2588+\u2591+  40% .* 30s left$/);
    expect(formatBarLine(lines[1]!, 12, 80)).toContain('days left');
  });

  it('the bars drawn on a terminal stream fit it and show the speed measured between updates', () => {
    const written: string[] = [];
    const stream = new Writable({
      write(chunk, _enc, done) {
        written.push(String(chunk));
        done();
      },
    });
    const tty = Object.assign(stream, { isTTY: true, columns: 80 });
    const job: JobView = {
      id: 'j1', state: 'running', platforms: 'all', errors: [], attempts: 1, createdAt: '', bytesDone: 0, bytesTotal: 10 * MiB,
      images: [
        { ref: 'team/app:v1', state: 'running', bytesDone: 0, bytesTotal: 10 * MiB },
        { ref: 'team/absent:1', state: 'failed', bytesDone: 0, bytesTotal: 0, error: 'manifest 1 not found in team/absent on upstream acr (registry.test), '.repeat(3) },
      ],
    } as unknown as JobView;
    let clock = 1_000_000;
    const view = progressView(job, tty as unknown as NodeJS.WriteStream, () => clock);
    clock += 2000;
    const running = { ...job.images[0]!, bytesDone: 4 * MiB };
    view.update({ ...job, bytesDone: 4 * MiB, images: [running, job.images[1]!] });
    view.stop();
    const screen = written.join('').replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').split(/[\r\n]+/).filter(Boolean);
    expect(screen).toHaveLength(3);
    for (const l of screen) expect(l.length, l).toBeLessThan(80);
    expect(screen[0]).toMatch(/^all images +\S+ +40% 4\.00 MiB\/10\.0 MiB {2}2\.00 MiB\/s {2}3s left$/);
    expect(screen[1]).toMatch(/^team\/app:v1 +\S+ +40% 4\.00 MiB\/10\.0 MiB {2}2\.00 MiB\/s {2}3s left$/);
    expect(screen[2]).toMatch(/^team\/absent:1 +\S+ +0% failed: manifest 1 not found/);
  });

  it('the speed is measured over the last seconds, unknown until a second has passed', () => {
    const meter = new RateMeter(10_000);
    expect(meter.sample(0, 0)).toBeNull();
    expect(meter.sample(MiB, 500)).toBeNull();
    expect(meter.sample(4 * MiB, 2000)).toBe(2 * MiB);
    meter.sample(20 * MiB, 12_000);
    expect(meter.sample(21 * MiB, 22_000)).toBe(0.1 * MiB);
  });
});
