// How a finished blob download is counted and logged: cached (with its throughput), or the upstream not having it.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeUpstream, makeImage, sha256 } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';

let fake: FakeUpstream;
let m: TestMirror;
let lines: Array<Record<string, unknown> & { level: number; msg: string }>;

beforeEach(async () => {
  fake = new FakeUpstream();
  lines = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as (typeof lines)[number]);
      done();
    },
  });
  m = await startTestMirror(fake, { config: { cache: { prefetch: false } }, log: pino({ level: 'debug' }, sink) });
});
afterEach(async () => {
  await m.close();
});

async function metric(name: string): Promise<string[]> {
  const text = await (await m.request('/metrics')).text();
  return text.split('\n').filter((l) => l.startsWith(name));
}

const logged = (msg: string) => lines.filter((l) => l.msg === msg);

describe('a blob the upstream does not have', () => {
  it('is a 404 BLOB_UNKNOWN counted as not_found and logged at debug, not as a failed fill', async () => {
    fake.add(makeImage('team/app', 'v1', [1000], 1));
    const missing = sha256('not in the registry');
    const res = await m.request(`/v2/team/app/blobs/${missing}`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('BLOB_UNKNOWN');
    await m.mirror.fills.settled();

    expect(await metric('acr_mirror_fills_total')).toEqual(['acr_mirror_fills_total{result="not_found"} 1']);
    expect(logged('blob fill failed; nothing cached')).toEqual([]);
    expect(lines.filter((l) => l.level >= 40)).toEqual([]);
    const [line] = logged('blob not found upstream; nothing cached');
    expect(line).toMatchObject({ level: 20, upstream: 'acr', repo: 'team/app', digest: missing });
  });
});

describe('a cached blob', () => {
  it('is logged with how long its download took and its throughput, observed by upstream when at least 1 MiB', async () => {
    const img = fake.add(makeImage('team/app', 'v1', [2 * 1024 * 1024, 1000], 2));
    for (const digest of img.blobs.keys()) {
      const res = await m.request(`/v2/team/app/blobs/${digest}`);
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    await m.mirror.fills.settled();

    const cached = logged('blob cached');
    expect(cached).toHaveLength(3);
    for (const line of cached) {
      expect(line.level).toBe(30);
      expect(line.ms).toEqual(expect.any(Number));
      expect(line.mibPerSecond).toEqual(expect.any(Number));
    }
    // Only the 2 MiB layer: the small layer and the config measure round trips, not throughput.
    expect(await metric('acr_mirror_fill_throughput_bytes_per_second_count')).toEqual(['acr_mirror_fill_throughput_bytes_per_second_count{upstream="acr"} 1']);
    const [sum] = await metric('acr_mirror_fill_throughput_bytes_per_second_sum');
    expect(Number(sum!.split(' ')[1])).toBeGreaterThan(0);
  });
});
