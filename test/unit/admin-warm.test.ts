// Warm jobs against the in-memory upstream: platform choice, per-image errors, joining client fills, progress
// events, and jobs that outlive the process.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { JobView } from '../../src/admin/jobs.js';
import { ADMIN_ENV, bearer, finishedJob, getJob, startWarm } from '../support/admin.js';
import { eventually } from '../support/eventually.js';
import { connectionRefused, FakeUpstream, type FakeImage, makeImage, makeIndex } from '../support/fake-upstream.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';

let fake: FakeUpstream;
let m: TestMirror;
let multi: { index: FakeImage; children: FakeImage[] };

beforeEach(async () => {
  fake = new FakeUpstream();
  multi = makeIndex('team/multi', 'v1', ['amd64', 'arm64'], [20_000, 5_000], 3);
  for (const image of [multi.index, ...multi.children]) fake.add(image);
  m = await startTestMirror(fake, { env: ADMIN_ENV });
});
afterEach(async () => {
  await m.close();
});

const ossGets = (digest: string) => fake.count({ host: 'oss.test', method: 'GET', pathIncludes: digest });
const sizeOf = (image: FakeImage) => [...image.blobs.values()].reduce((n, b) => n + b.length, 0);
const [amd64, arm64] = [() => multi.children[0]!, () => multi.children[1]!];

describe('warm', () => {
  it('warms one platform of an index, then all, fetching each blob once; then serves it all without the upstream', async () => {
    const started = await startWarm(m, { images: ['team/multi:v1'], platforms: ['linux/amd64'] });
    expect(started.state).toBe('running');
    const one = await finishedJob(m, started.id);
    expect(one.state).toBe('done');
    expect(one.images).toEqual([
      expect.objectContaining({ ref: 'team/multi:v1', state: 'done', digest: multi.index.manifestDigest, platforms: ['linux/amd64'] }),
    ]);
    expect(one.bytesTotal).toBe(sizeOf(amd64()));
    expect(one.bytesDone).toBe(one.bytesTotal);
    for (const digest of amd64().blobs.keys()) expect(ossGets(digest)).toBe(1);
    for (const digest of arm64().blobs.keys()) expect(ossGets(digest)).toBe(0);

    const all = await finishedJob(m, (await startWarm(m, { images: ['team/multi:v1'], platforms: 'all' })).id);
    expect(all.state).toBe('done');
    expect(all.images[0]!.platforms).toEqual(['linux/amd64', 'linux/arm64']);
    for (const child of multi.children) for (const digest of child.blobs.keys()) expect(ossGets(digest)).toBe(1);

    fake.intercept = connectionRefused;
    const calls = fake.calls.length;
    for (const path of ['/v2/team/multi/manifests/v1', ...multi.children.map((c) => `/v2/team/multi/manifests/${c.manifestDigest}`)]) {
      expect((await m.request(path)).status, path).toBe(200);
    }
    for (const child of multi.children) {
      for (const [digest, bytes] of child.blobs) {
        const res = await m.request(`/v2/team/multi/blobs/${digest}`);
        expect(res.headers.get('x-cache')).toBe('hit');
        expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
      }
    }
    expect(fake.calls.length).toBe(calls);
  });

  it('takes platforms with a variant, and all of them by default', async () => {
    const job = await finishedJob(m, (await startWarm(m, { images: ['team/multi:v1'] })).id);
    expect(job.platforms).toBe('all');
    expect(job.images[0]!.platforms).toEqual(['linux/amd64', 'linux/arm64']);
    const v8 = await finishedJob(m, (await startWarm(m, { images: ['team/multi:v1'], platforms: ['linux/arm64/v8'] })).id);
    expect(v8.images[0]!.platforms).toEqual(['linux/arm64']);
  });

  it('reports invalid references, unknown routes, missing platforms and upstream errors per image, and warms the rest', async () => {
    await m.close();
    m = await startTestMirror(fake, { env: ADMIN_ENV, config: { routes: [{ prefix: 'team', upstream: 'acr' }] } });
    const single = fake.add(makeImage('team/single', '1.0', [3000], 7));
    const broken = fake.add(makeImage('team/broken', '1.0', [4000, 100], 8));
    const [bad] = [...broken.blobs.entries()].find(([, b]) => b.length === 4000)!;
    fake.intercept = (call) => (call.host === 'oss.test' && call.path.includes(bad) ? new Response('no', { status: 500 }) : undefined);

    const refs = ['team/single:1.0', 'Not A Ref!', 'elsewhere/app:1', 'team/missing:1', 'team/multi:v1', 'team/broken:1.0'];
    const job = await finishedJob(m, (await startWarm(m, { images: refs, platforms: ['linux/s390x'] })).id);
    expect(job.state).toBe('failed');
    const status = Object.fromEntries(job.images.map((i) => [i.ref, i]));
    expect(status['team/single:1.0']!.state).toBe('done');
    expect(status['team/single:1.0']!.bytesDone).toBe(sizeOf(single));
    expect(status['Not A Ref!']!.error).toMatch(/invalid repository name/);
    expect(status['elsewhere/app:1']!.error).toMatch(/no route matches repository elsewhere\/app/);
    expect(status['team/missing:1']!.error).toBe('manifest 1 not found in team/missing on upstream acr (registry.test)');
    expect(status['team/multi:v1']!.error).toBe('the index has no linux/s390x manifest (it has linux/amd64, linux/arm64)');
    expect(status['team/broken:1.0']!.state).toBe('failed');
    expect(status['team/broken:1.0']!.error).toContain(`blob ${bad}: `);
    expect(job.errors.map((e) => e.ref).sort()).toEqual(refs.filter((r) => r !== 'team/single:1.0').sort());
    // the broken image's good blob was still cached
    const good = [...broken.blobs.keys()].find((d) => d !== bad)!;
    expect((await m.request(`/v2/team/broken/blobs/${good}`)).headers.get('x-cache')).toBe('hit');
  });

  it('refuses a malformed request with 400 and starts nothing', async () => {
    const post = (body: string, type = 'application/json') =>
      m.request('/admin/warm', { method: 'POST', headers: { ...bearer(), 'content-type': type }, body });
    for (const [body, message] of [
      ['{"images": []}', /images: Array must contain at least 1/],
      ['{"images": ["a:1"], "platforms": ["linux"]}', /invalid platform "linux"/],
      ['{"images": ["a:1"], "extra": 1}', /Unrecognized key/],
      ['not json', /not valid JSON/],
    ] as const) {
      const res = await post(body);
      expect(res.status, body).toBe(400);
      expect(((await res.json()) as { errors: { message: string }[] }).errors[0]!.message).toMatch(message);
    }
    expect((await post('{"images":["a:1"]}', 'text/plain')).status).toBe(400);
    const jobs = (await (await m.request('/admin/jobs', { headers: bearer() })).json()) as { jobs: JobView[] };
    expect(jobs.jobs).toEqual([]);
  });

  it('a client pulling a blob while a warm fills it joins that fill: one upstream download', async () => {
    const image = fake.add(makeImage('team/big', '1', [400_000], 9));
    const [layer, bytes] = [...image.blobs.entries()].find(([, b]) => b.length === 400_000)!;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    fake.ossBody = (digest, body) =>
      digest !== layer
        ? body
        : new ReadableStream({
            async start(controller) {
              controller.enqueue(new Uint8Array(body.subarray(0, 1000)));
              await gate;
              controller.enqueue(new Uint8Array(body.subarray(1000)));
              controller.close();
            },
          });
    const job = await startWarm(m, { images: ['team/big:1'] });
    await eventually(() => expect(m.mirror.fills.running(layer)).toBeDefined());
    const live = await getJob(m, job.id);
    expect(live.images[0]!.bytesTotal).toBe(sizeOf(image));

    const pull = await m.request(`/v2/team/big/blobs/${layer}`);
    expect(pull.headers.get('x-cache')).toBe('joined');
    release();
    expect(Buffer.from(await pull.arrayBuffer()).equals(bytes)).toBe(true);
    expect((await finishedJob(m, job.id)).state).toBe('done');
    for (const digest of image.blobs.keys()) expect(ossGets(digest)).toBe(1);
  });

  it('streams progress as server-sent events until the job ends', async () => {
    const job = await startWarm(m, { images: ['team/multi:v1'] });
    const res = await m.request(`/admin/jobs/${job.id}/events`, { headers: bearer() });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = parseEvents(await res.text());
    expect(events.at(-1)!.event).toBe('end');
    expect(events.slice(0, -1).every((e) => e.event === 'progress')).toBe(true);
    const final = events.at(-1)!.data;
    expect(final.state).toBe('done');
    expect(final.bytesDone).toBe(sizeOf(amd64()) + sizeOf(arm64()));
    const done = events.map((e) => e.data.bytesDone);
    expect(done).toEqual([...done].sort((a, b) => a - b));

    // a finished job: its final state at once, then the end
    const again = parseEvents(await (await m.request(`/admin/jobs/${job.id}/events`, { headers: bearer() })).text());
    expect(again.map((e) => e.event)).toEqual(['progress', 'end']);
    expect((await m.request('/admin/jobs/0000/events', { headers: bearer() })).status).toBe(404);
  });
});

describe('shutdown', () => {
  it('ends event streams and starts no more warm downloads, so the drain is not held up', async () => {
    const [first, second] = [...amd64().blobs.keys()];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    fake.ossBody = (digest, body) =>
      digest !== first
        ? body
        : new ReadableStream({
            async start(controller) {
              await gate;
              controller.enqueue(new Uint8Array(body));
              controller.close();
            },
          });
    await m.close();
    m = await startTestMirror(fake, { env: ADMIN_ENV, config: { admin: { warm_concurrency: 1 } } });
    const job = await startWarm(m, { images: ['team/multi:v1'], platforms: ['linux/amd64'] });
    await eventually(() => expect(m.mirror.fills.running(first!)).toBeDefined());
    const stream = (await m.request(`/admin/jobs/${job.id}/events`, { headers: bearer() })).text();
    m.mirror.beginShutdown();
    const events = parseEvents(await stream);
    expect(events.map((e) => e.event)).not.toContain('end');
    release();
    await m.mirror.fills.settled();
    expect(ossGets(first!)).toBe(1);
    expect(ossGets(second!)).toBe(0); // was waiting for the one download slot
  });
});

describe('jobs across restarts', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'acr-mirror-restart-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a job the process did not finish is resumed by the next one', async () => {
    const first = await startTestMirror(fake, { env: ADMIN_ENV, dir });
    const layer = [...amd64().blobs.entries()].find(([, b]) => b.length === 20_000)![0];
    let fail!: (err: Error) => void;
    fake.ossBody = (digest, body) =>
      digest !== layer
        ? body
        : new ReadableStream({
            start(controller) {
              controller.enqueue(new Uint8Array(body.subarray(0, 10)));
              fail = (err) => controller.error(err);
            },
          });
    const job = await startWarm(first, { images: ['team/multi:v1'], platforms: ['linux/amd64'] });
    await eventually(() => {
      expect(first.mirror.fills.running(layer)).toBeDefined();
      expect(fail).toBeDefined();
    });
    first.mirror.beginShutdown();
    await first.mirror.close();
    fail(new Error('process gone'));
    fake.ossBody = null;

    const second = await startTestMirror(fake, { env: ADMIN_ENV, dir });
    try {
      const resumed = await finishedJob(second, job.id);
      expect(resumed.state).toBe('done');
      expect(resumed.attempts).toBe(2);
      expect(resumed.bytesDone).toBe(sizeOf(amd64()));
    } finally {
      await second.close();
    }
  });

  it('a job interrupted by three restarts is marked failed, not resumed', async () => {
    const first = await startTestMirror(fake, { env: ADMIN_ENV, dir });
    const job = await startWarm(first, { images: ['team/multi:v1', 'team/other:1'] });
    await finishedJob(first, job.id);
    await first.close();
    const db = new Database(join(dir, 'data', 'mirror.db'));
    const images = JSON.stringify([
      { ref: 'team/multi:v1', state: 'done', bytesDone: 1, bytesTotal: 1 },
      { ref: 'team/other:1', state: 'running', bytesDone: 0, bytesTotal: 0 },
    ]);
    db.prepare("UPDATE warm_jobs SET state = 'running', attempts = 3, images = ? WHERE id = ?").run(images, job.id);
    db.close();

    const second = await startTestMirror(fake, { env: ADMIN_ENV, dir });
    try {
      const stored = await getJob(second, job.id);
      expect(stored.state).toBe('failed');
      expect(stored.error).toBe('interrupted by a restart 3 times; not resumed again');
      expect(stored.images.map((i) => [i.state, i.error])).toEqual([
        ['done', undefined],
        ['failed', 'interrupted'],
      ]);
    } finally {
      await second.close();
    }
  });
});

function parseEvents(text: string): { event: string; data: JobView }[] {
  return text
    .split('\n\n')
    .filter((block) => block.includes('data:'))
    .map((block) => {
      const field = (name: string) => block.split('\n').find((l) => l.startsWith(`${name}:`))?.slice(name.length + 1).trim() ?? '';
      return { event: field('event'), data: JSON.parse(field('data')) as JobView };
    });
}
