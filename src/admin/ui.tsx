import { raw } from 'hono/html';
import type { Child } from 'hono/jsx';
import { formatBytes } from './format.js';
import { deleteTagScript, imagesTableScript, type PageEvents, warmFormScript } from './ui-client.js';
import { consoleScript, localTimes } from './ui-console-client.js';
import { jobPanelScript, renderJob } from './ui-job-client.js';
import { type AdminPageData, ImageRows, JobRows, Stats, UpdatedAt, UpstreamCards } from './ui-parts.js';
import { STYLE } from './ui-style.js';
import { TrafficChart } from './ui-traffic.js';

export { type AdminPageData, adminPageParts } from './ui-parts.js';

function Page(props: { nonce: string; title: string; children: Child }) {
  return (
    <>
      {raw('<!DOCTYPE html>')}
      <html lang="en">
        <head>
          <meta charset="utf-8" />
          <meta name="viewport" content="width=device-width, initial-scale=1" />
          <title>{props.title}</title>
          <link rel="icon" href="data:," />
          <style nonce={props.nonce} dangerouslySetInnerHTML={{ __html: STYLE }} />
        </head>
        <body>{props.children}</body>
      </html>
    </>
  );
}

export function loginPage(props: { nonce: string; error?: string }) {
  return (
    <Page nonce={props.nonce} title="acr-mirror admin: log in">
      <form class="login" method="post" action="/admin/ui/login">
        <h1>acr-mirror admin</h1>
        <label>
          Admin token
          <input id="token" name="token" type="password" autocomplete="current-password" required autofocus />
        </label>
        {props.error ? <p class="error">{props.error}</p> : null}
        <button type="submit">Log in</button>
      </form>
    </Page>
  );
}

const EVENTS: PageEvents = { changed: 'admin:changed', refreshed: 'admin:refreshed', showJob: 'admin:show-job' };
/** How often the page refreshes its parts. */
const REFRESH_EVERY_MS = 10_000;

function pageScript(): string {
  const events = JSON.stringify(EVENTS);
  return [
    `(${consoleScript.toString()})(${localTimes.toString()}, ${events}, ${REFRESH_EVERY_MS});`,
    `(${imagesTableScript.toString()})(${events});`,
    `(${deleteTagScript.toString()})(${events});`,
    `(${jobPanelScript.toString()})(${formatBytes.toString()}, ${renderJob.toString()}, ${events});`,
    `(${warmFormScript.toString()})(${events});`,
  ].join('\n');
}

export function adminPage(props: AdminPageData & { nonce: string }) {
  return (
    <Page nonce={props.nonce} title="acr-mirror admin">
      <header>
        <h1>acr-mirror admin</h1>
        <div class="status">
          <UpdatedAt at={props.updatedAt} />
          <label>
            <input id="auto-refresh" type="checkbox" checked />
            auto-refresh every {REFRESH_EVERY_MS / 1000} s
          </label>
          <span id="refresh-status" class="error" role="status" />
          <form method="post" action="/admin/ui/logout">
            <button type="submit">Log out</button>
          </form>
        </div>
      </header>

      <UpstreamCards upstreams={props.upstreams} />
      <Stats stats={props.stats} />
      <TrafficChart minutes={props.traffic} now={Date.parse(props.updatedAt)} />
      <WarmSection />
      <ImagesSection {...props} />

      <section>
        <h2>Recent warm jobs</h2>
        <p class="muted">Click a job for its images and errors.</p>
        <div class="scroll">
          <table id="jobs">
            <thead>
              <tr><th>Job</th><th>State</th><th>Images</th><th>Bytes</th><th>Started</th></tr>
            </thead>
            <JobRows jobs={props.jobs} />
          </table>
        </div>
      </section>
      <script nonce={props.nonce} dangerouslySetInnerHTML={{ __html: pageScript() }} />
    </Page>
  );
}

function WarmSection() {
  return (
    <section>
      <h2>Warm</h2>
      <form id="warm-form">
        <label>
          Images, one per line
          <textarea id="warm-images" rows={4} placeholder={'team/app:1.2\nlibrary/nginx@sha256:…'} required />
        </label>
        <label>
          Platforms
          <input id="warm-platforms" value="all" placeholder="all, or linux/amd64, linux/arm64" />
        </label>
        <label>
          <input id="warm-referrers" type="checkbox" /> with referrers (signatures, SBOMs)
        </label>
        <button id="warm-submit" type="submit">
          Warm
        </button>
        <span id="warm-error" class="error" />
      </form>
      <div id="warm-progress" hidden>
        <p>
          Job <code id="job-id" />: <strong id="job-state" /> <span id="job-bytes" class="muted" /> <span id="job-error" class="error" />
        </p>
        <progress id="job-progress" />
        <div class="scroll">
          <table>
            <thead>
              <tr><th>Image</th><th>State</th><th>Progress</th><th>Bytes</th><th>Details</th></tr>
            </thead>
            <tbody id="job-images-body" />
          </table>
        </div>
      </div>
    </section>
  );
}

function ImagesSection({ images }: Pick<AdminPageData, 'images'>) {
  return (
    <section>
      <h2>Cached images</h2>
      <input id="images-filter" type="search" placeholder="Filter by name, tag, platform…" />
      <p id="images-error" class="error" role="status" />
      <div class="scroll">
        <table id="images">
          <thead>
            <tr>
              <th data-sort="text">Repository</th>
              <th data-sort="text">Tag</th>
              <th data-sort="text">Upstream</th>
              <th data-sort="text">Digest</th>
              <th data-sort="text">Platforms</th>
              <th data-sort="number">Size</th>
              <th data-sort="number" title="cached signatures, SBOMs and other artifacts referring to the image">Referrers</th>
              <th data-sort="number">Hits</th>
              <th data-sort="number">Last pulled</th>
              <th><span class="muted">Remove</span></th>
            </tr>
          </thead>
          <ImageRows images={images} />
        </table>
      </div>
    </section>
  );
}
