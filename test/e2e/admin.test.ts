// The admin side on the built process in front of real Distribution: warm jobs (one platform, all, concurrent with
// a client pull), the warm CLI, the web page driven in Debian's chromium, and a warmed image pulled by skopeo with
// the upstream gone.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CachedImage } from '../../src/admin/inventory.js';
import type { JobView } from '../../src/admin/jobs.js';
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
const CHROMIUM = '/usr/bin/chromium';

describe('admin', () => {
  let up: Upstream;
  let mirror: MirrorProcess;
  let images: Record<'multi' | 'concurrent' | 'cli' | 'page', BuiltImage>;
  /** Outlives the upstream (whose own skopeo and image files go with it). */
  let work: string;
  let skopeo: Skopeo;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'acr-admin-e2e-'));
    skopeo = await createSkopeo(join(work, 'skopeo'));
    up = await startUpstream({ images: new ImageBuilder(join(work, 'images'), skopeo) });
    const [multi, concurrent, cli, page] = await Promise.all([
      up.pushImage({ kind: 'oci-index', repo: 'team/multi', tag: '2.0', layers: [600_000, 100_000], seed: 'admin/multi' }),
      up.pushImage({ kind: 'oci', repo: 'team/busy', tag: '1', layers: [2_000_000, 300_000], seed: 'admin/concurrent' }),
      up.pushImage({ kind: 'docker', repo: 'team/cli', tag: 'v1', layers: [200_000], seed: 'admin/cli' }),
      up.pushImage({ kind: 'oci', repo: 'team/page', tag: '1.0', layers: [300_000], seed: 'admin/page' }),
    ]);
    images = { multi, concurrent, cli, page };
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

  it('the web page: log in, warm from the form with live progress, find the image in the table', async (ctx) => {
    const profile = await mkdtemp(join(tmpdir(), 'acr-chromium-'));
    let browser: BrowserContext;
    try {
      browser = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
      });
    } catch (err) {
      await rm(profile, { recursive: true, force: true });
      const reason = `chromium cannot start (${CHROMIUM}; .ci/run installs it): ${(err as Error).message.split('\n')[0]}`;
      if (process.env.ACR_MIRROR_REQUIRE_CLIENTS === '1') throw new Error(reason);
      return ctx.skip(reason);
    }
    try {
      const page = await browser.newPage();
      const problems: string[] = [];
      page.on('pageerror', (err) => problems.push(err.message));
      page.on('console', (msg) => void (msg.type() === 'error' && !msg.text().includes('401') && problems.push(msg.text())));

      const login = await page.goto(`${mirror.url}/admin/ui`);
      expect(login!.status()).toBe(401);
      await page.fill('#token', TOKEN);
      await Promise.all([page.waitForURL(`${mirror.url}/admin/ui`), page.click('button[type=submit]')]);
      await page.waitForSelector('#warm-form');

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
    } finally {
      await browser.close();
      await rm(profile, { recursive: true, force: true });
    }
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
