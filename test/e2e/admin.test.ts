// The admin side on the built process in front of real Distribution: warm jobs (one platform, all, concurrent with
// a client pull), the warm CLI, the web page driven in Debian's chromium, and a warmed image pulled by skopeo with
// the upstream gone.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CachedImage } from '../../src/admin/inventory.js';
import type { JobView } from '../../src/admin/jobs.js';
import { withChromium } from './harness/browser.js';
import { type BuiltImage, ImageBuilder } from './harness/images.js';
import { expectCacheConsistent, expectSameImage, mirrorConfig } from './harness/mirror-check.js';
import { startMirror, type MirrorProcess } from './harness/mirror-process.js';
import { run } from './harness/proc.js';
import { createSkopeo, type Skopeo } from './harness/skopeo.js';
import { startUpstream, type Upstream } from './harness/upstream.js';
import { eventually } from '../support/eventually.js';

const MAIN = resolve(import.meta.dirname, '../../dist/main.js');
const OUTPUT = resolve(import.meta.dirname, '../../test-output');
const TOKEN = 'e2e-admin-token-0123456789abcdef';

/** The time's text is its datetime in the page's zone (Asia/Shanghai, UTC+8, no daylight saving), saying so. */
async function expectLocalTime(time: Locator): Promise<void> {
  const at = new Date((await time.getAttribute('datetime'))!);
  const local = new Date(at.getTime() + 8 * 3600_000).toISOString();
  expect(await time.textContent()).toBe(`${local.slice(0, 10)} ${local.slice(11, 19)} GMT+8`);
}

describe('admin', () => {
  let up: Upstream;
  let mirror: MirrorProcess;
  let images: Record<'multi' | 'concurrent' | 'cli' | 'page' | 'kept' | 'dropped', BuiltImage>;
  /** Outlives the upstream (whose own skopeo and image files go with it). */
  let work: string;
  let skopeo: Skopeo;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'acr-admin-e2e-'));
    skopeo = await createSkopeo(join(work, 'skopeo'));
    up = await startUpstream({ images: new ImageBuilder(join(work, 'images'), skopeo) });
    const [multi, concurrent, cli, page, kept, dropped] = await Promise.all([
      up.pushImage({ kind: 'oci-index', repo: 'team/multi', tag: '2.0', layers: [600_000, 100_000], seed: 'admin/multi' }),
      up.pushImage({ kind: 'oci', repo: 'team/busy', tag: '1', layers: [2_000_000, 300_000], seed: 'admin/concurrent' }),
      up.pushImage({ kind: 'docker', repo: 'team/cli', tag: 'v1', layers: [200_000], seed: 'admin/cli' }),
      up.pushImage({ kind: 'oci', repo: 'team/page', tag: '1.0', layers: [300_000], seed: 'admin/page' }),
      up.pushImage({ kind: 'oci', repo: 'team/console', tag: 'kept', layers: [100_000], seed: 'admin/console-kept' }),
      up.pushImage({ kind: 'oci', repo: 'team/console', tag: 'dropped', layers: [100_000], seed: 'admin/console-dropped' }),
    ]);
    images = { multi, concurrent, cli, page, kept, dropped };
    mirror = await startMirror({
      config: mirrorConfig(up),
      env: { ACR_PASSWORD: up.credentials.password, ACR_MIRROR_ADMIN_TOKEN: TOKEN },
    });
  });

  afterAll(async () => {
    await mirror?.stop();
    await up?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const admin = (path: string, init: RequestInit = {}) =>
    fetch(`${mirror.url}${path}`, { ...init, headers: { authorization: `Bearer ${TOKEN}`, ...init.headers } });
  const warm = async (body: unknown): Promise<string> => {
    const res = await admin('/admin/warm', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect(res.status).toBe(202);
    return ((await res.json()) as JobView).id;
  };
  const finished = (id: string): Promise<JobView> =>
    eventually(
      async () => {
        const job = (await (await admin(`/admin/jobs/${id}`)).json()) as JobView;
        expect(job.state, JSON.stringify(job)).not.toBe('running');
        return job;
      },
      { timeoutMs: 60_000, intervalMs: 50, message: `job ${id} still running` },
    );
  const copy = (image: BuiltImage, out: string, flags: string[] = ['--all']) =>
    skopeo(['copy', ...flags, '--src-tls-verify=false', `docker://${mirror.host}/${image.repo}:${image.tag}`, `dir:${out}`]);
  const ossGets = (digest: string) => up.proxy.count({ front: 'oss', method: 'GET', blob: digest });
  const cli = (args: string[], env: Record<string, string> = { ACR_MIRROR_ADMIN_TOKEN: TOKEN }) =>
    run(process.execPath, [MAIN, 'warm', '--url', mirror.url, ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, timeoutMs: 60_000 });

  it('a client pull concurrent with a warm of the same image joins its downloads: each blob fetched upstream once', async () => {
    const image = images.concurrent;
    // slow OSS answers keep the warm's downloads running while skopeo asks for the same blobs
    up.proxy.faults.add({ front: 'oss', method: 'GET', path: /\/data$/, kind: 'delay', ms: 1500, times: image.blobs.length });
    const id = await warm({ images: [`${image.repo}:${image.tag}`] });
    const out = join(work, 'concurrent');
    const pulled = await copy(image, out);
    expect(pulled.code, pulled.stderr).toBe(0);
    await expectSameImage(out, image);
    expect((await finished(id)).state).toBe('done');
    for (const blob of image.blobs) expect(ossGets(blob.digest), blob.digest).toBe(1);
    const metrics = await (await fetch(`${mirror.url}/metrics`)).text();
    expect(Number(/^acr_mirror_fill_joins_total (\d+)/m.exec(metrics)![1])).toBeGreaterThan(0);
  });

  it('the warm CLI shows progress, prints a summary and exits 0, 1 when an image fails, 2 when refused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'acr-warm-cli-'));
    try {
      const list = join(dir, 'list.txt');
      await writeFile(list, `# images for the site\n${images.cli.repo}:${images.cli.tag}\n\n`);
      const ok = await cli(['--file', list, '--platform', 'linux/amd64']);
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toMatch(new RegExp(`^done +team/cli:v1 +${images.cli.digest}  \\d`, 'm'));
      expect(ok.stdout).toMatch(/^warmed 1 of 1 images, .* \(job [0-9a-f]+: done\)$/m);
      for (const blob of images.cli.blobs) expect(ossGets(blob.digest)).toBe(1);

      const some = await cli([`${images.cli.repo}:${images.cli.tag}`, 'team/absent:1', 'Bad Ref']);
      expect(some.code, some.stderr).toBe(1);
      expect(some.stdout).toMatch(/^done +team\/cli:v1 /m);
      expect(some.stdout).toMatch(/^failed +team\/absent:1 +manifest 1 not found in team\/absent/m);
      expect(some.stdout).toMatch(/^failed +Bad Ref +invalid repository name/m);

      const refused = await cli(['team/cli:v1'], { ACR_MIRROR_ADMIN_TOKEN: 'not-the-admin-token-0000' });
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain('the mirror refused the admin token');
      const unreachable = await cli(['team/cli:v1', '--url', 'http://127.0.0.1:9']);
      expect(unreachable.code).toBe(2);
      expect(unreachable.stderr).toContain('cannot reach the mirror at http://127.0.0.1:9');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  const logIn = async (page: Page) => {
    const login = await page.goto(`${mirror.url}/admin/ui`);
    expect(login!.status()).toBe(401);
    await page.fill('#token', TOKEN);
    await Promise.all([page.waitForURL(`${mirror.url}/admin/ui`), page.click('button[type=submit]')]);
    await page.waitForSelector('#warm-form');
  };

  it('the web page: log in, warm from the form with live progress, find the image in the table', async (ctx) => {
    const skipped = await withChromium({}, async ({ page, problems }) => {
      await logIn(page);
      const ref = `${images.page.repo}:${images.page.tag}`;
      expect(await page.locator(`#images-body tr[data-ref="${ref}"]`).count()).toBe(0);
      await page.fill('#warm-images', ref);
      await page.fill('#warm-platforms', 'all');
      await page.click('#warm-submit');
      await page.waitForSelector('#job-state[data-state="done"]', { timeout: 30_000 });
      const row = page.locator(`#images-body tr[data-ref="${ref}"]`);
      await row.waitFor({ timeout: 10_000 });
      expect(await page.locator('#job-images-body tr').first().getAttribute('data-state')).toBe('done');

      // filter and sort
      await page.fill('#images-filter', 'page');
      expect(await page.locator('#images-body tr:not([hidden])').count()).toBe(1);
      await page.fill('#images-filter', '');
      await page.click('th:has-text("Size")');
      expect(await page.getAttribute('th:has-text("Size")', 'aria-sort')).toBe('ascending');
      const sizes = await page.locator('#images-body tr td:nth-child(6)').evaluateAll((cells) => cells.map((c) => Number((c as HTMLElement).dataset.value)));
      expect(sizes).toEqual([...sizes].sort((a, b) => a - b));
      expect(await page.textContent('#stats')).toContain('of no limit');

      expect(problems).toEqual([]); // before the screenshot, whose caret hiding trips the page's CSP
      await mkdir(OUTPUT, { recursive: true });
      await page.screenshot({ path: join(OUTPUT, 'admin-ui.png'), fullPage: true });
    });
    if (skipped) ctx.skip(skipped);
  });

  it('the web page as a health console: upstream card, local times, chart, failed and past jobs, delete, auto-refresh, narrow screens', async (ctx) => {
    const refOf = (image: BuiltImage) => `${image.repo}:${image.tag}`;
    const warmed = await finished(await warm({ images: [refOf(images.kept), refOf(images.dropped)] }));
    expect(warmed.state).toBe('done');
    const skipped = await withChromium({ timezoneId: 'Asia/Shanghai' }, async ({ page, problems }) => {
      await page.clock.install();
      await logIn(page);
      await page.clock.pauseAt(Date.now() + 1000); // from here the auto-refresh timer runs only when the test says
      const card = page.locator('#upstreams .card[data-upstream="acr"]');
      expect(await card.getAttribute('data-state')).toBe('up');
      expect(await card.locator('dd').first().textContent()).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d GMT\+8$/);
      await expectLocalTime(page.locator('#updated-at time'));
      expect(await page.locator('#traffic svg g[data-minute]').count()).toBeGreaterThan(0);

      // a failed job: its bar and state say so, and its image the reason
      await page.fill('#warm-images', 'team/absent:1');
      await page.click('#warm-submit');
      await page.waitForSelector('#job-state[data-state="failed"]', { timeout: 30_000 });
      const bar = page.locator('#job-progress');
      expect(await bar.getAttribute('data-state')).toBe('failed');
      expect(await bar.evaluate((e) => getComputedStyle(e).borderTopColor)).toBe('rgb(179, 38, 30)');
      expect(await page.textContent('#job-images-body tr[data-state="failed"]')).toContain('manifest 1 not found in team/absent');
      const failedId = (await page.textContent('#job-id'))!;
      await page.locator(`#jobs-body tr[data-id="${failedId}"][data-state="failed"] progress[data-state="failed"]`).waitFor();

      // a past job opens to its per-image results
      await page.click(`#jobs-body tr[data-id="${warmed.id}"]`);
      await page.locator(`#job-id:text-is("${warmed.id}")`).waitFor();
      expect(await page.getAttribute('#job-state', 'data-state')).toBe('done');
      expect(await page.locator('#job-images-body tr[data-state="done"]').allTextContents()).toEqual([
        expect.stringContaining(refOf(images.kept)),
        expect.stringContaining(refOf(images.dropped)),
      ]);
      expect(await page.getAttribute(`#jobs-body tr[data-id="${warmed.id}"]`, 'aria-selected')).toBe('true');

      // delete a cached tag: nothing without confirmation, then gone
      const row = page.locator(`#images-body tr[data-ref="${refOf(images.dropped)}"]`);
      const asked: string[] = [];
      page.once('dialog', (d) => void (asked.push(d.message()), d.dismiss()));
      await row.locator('button.delete').click();
      await expect.poll(() => asked.length).toBe(1);
      expect(asked[0]).toContain(`Remove the tag ${refOf(images.dropped)} (upstream acr)`);
      expect(await row.count()).toBe(1);
      page.once('dialog', (d) => void d.accept());
      await row.locator('button.delete').click();
      await row.waitFor({ state: 'detached' });
      const cached = async () => ((await (await admin('/admin/images')).json()) as { images: CachedImage[] }).images.map((i) => `${i.repository}:${i.tag}`);
      expect(await cached()).not.toContain(refOf(images.dropped));

      // auto-refresh: a tag removed through the API leaves the table on the next refresh, without a reload
      const keptRow = page.locator(`#images-body tr[data-ref="${refOf(images.kept)}"]`);
      expect(await keptRow.count()).toBe(1);
      expect((await admin(`/admin/images/${refOf(images.kept)}`, { method: 'DELETE' })).status).toBe(200);
      const before = await page.getAttribute('#updated-at time', 'datetime');
      await page.clock.runFor(10_000);
      await keptRow.waitFor({ state: 'detached' });
      expect(await page.getAttribute('#updated-at time', 'datetime')).not.toBe(before);
      await expectLocalTime(page.locator('#updated-at time'));

      expect(problems).toEqual([]); // before the screenshots, whose caret hiding trips the page's CSP
      await mkdir(OUTPUT, { recursive: true });
      for (const width of [1280, 400]) {
        await page.setViewportSize({ width, height: 900 });
        expect(await page.evaluate(() => document.documentElement.scrollWidth), `page width at ${width} px`).toBeLessThanOrEqual(width);
        await page.screenshot({ path: join(OUTPUT, `admin-console-${width}.png`), fullPage: true });
      }
    });
    if (skipped) ctx.skip(skipped);
  });

  // Last: stops the upstream.
  it('warms one platform of a multi-arch index, then all; with the upstream stopped, skopeo pulls it all from cache', async () => {
    const image = images.multi;
    const [amd64, arm64] = image.manifests;
    const blobsOf = (m: typeof amd64) => [m!.config, ...m!.layers];

    const one = await finished(await warm({ images: [`${image.repo}:${image.tag}`], platforms: ['linux/amd64'] }));
    expect(one.state).toBe('done');
    expect(one.images[0]).toMatchObject({ state: 'done', digest: image.digest, platforms: ['linux/amd64'] });
    expect(one.bytesDone).toBe(blobsOf(amd64).reduce((n, b) => n + b.size, 0));
    for (const blob of blobsOf(amd64)) expect(ossGets(blob.digest)).toBe(1);
    for (const blob of blobsOf(arm64)) expect(ossGets(blob.digest)).toBe(0);

    const all = await finished(await warm({ images: [`${image.repo}@${image.digest}`], platforms: 'all' }));
    expect(all.state).toBe('done');
    for (const blob of image.blobs) expect(ossGets(blob.digest)).toBe(1);
    const listed = ((await (await admin('/admin/images')).json()) as { images: CachedImage[] }).images.find((i) => i.repository === image.repo)!;
    expect(listed).toMatchObject({ tag: image.tag, digest: image.digest, platforms: ['linux/amd64', 'linux/arm64'], uncachedPlatforms: [] });

    await up.stop();
    const out = join(work, 'from-cache');
    const pulled = await copy(image, out);
    expect(pulled.code, pulled.stderr).toBe(0);
    await expectSameImage(out, image);
    const arm = await copy(image, join(work, 'arm64'), ['--override-arch', 'arm64']);
    expect(arm.code, arm.stderr).toBe(0);
    await expectCacheConsistent(mirror.dataDir);
  });
});
