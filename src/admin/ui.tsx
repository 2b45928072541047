import { raw } from 'hono/html';
import type { Child } from 'hono/jsx';
import { formatBytes } from './format.js';
import type { CacheStats, CachedImage } from './inventory.js';
import type { JobView } from './jobs.js';
import { imagesTableScript, warmFormScript } from './ui-client.js';

const STYLE = `
  :root { font-family: system-ui, sans-serif; color: #1d2330; background: #f6f7f9; }
  body { max-width: 1200px; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
  header { display: flex; justify-content: space-between; align-items: center; }
  h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin: 0 0 .6rem; }
  section { background: #fff; border: 1px solid #dde1e7; border-radius: 6px; padding: 1rem; margin: 1rem 0; }
  #stats { display: grid; grid-template-columns: repeat(auto-fit, minmax(240px, 1fr)); gap: 1rem; background: none; border: 0; padding: 0; }
  #stats > div { background: #fff; border: 1px solid #dde1e7; border-radius: 6px; padding: 1rem; }
  .big { font-size: 1.8rem; margin: .2rem 0; }
  meter, progress { width: 100%; height: 1rem; }
  table { width: 100%; border-collapse: collapse; font-size: .9rem; }
  th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #eef0f3; vertical-align: top; }
  th[data-sort] { cursor: pointer; user-select: none; white-space: nowrap; }
  th[aria-sort=ascending]::after { content: " \\25B2"; } th[aria-sort=descending]::after { content: " \\25BC"; }
  td.num { text-align: right; } code { font-size: .85em; }
  textarea, input { width: 100%; box-sizing: border-box; font: inherit; margin: .2rem 0 .6rem; padding: .3rem; }
  button { font: inherit; padding: .35rem 1rem; }
  .error { color: #b3261e; } .muted { color: #6b7280; }
  form.login { max-width: 360px; margin: 4rem auto; }
`;

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

const when = (iso: string | null) => (iso ? iso.slice(0, 16).replace('T', ' ') : '—');
const time = (iso: string | null) => (iso ? String(Date.parse(iso)) : '0');

export interface AdminPageData {
  images: CachedImage[];
  stats: CacheStats;
  jobs: JobView[];
}

function Stats({ stats }: { stats: CacheStats }) {
  const { cache, requests, bytes } = stats;
  return (
    <section id="stats">
      <div>
        <h2>Disk</h2>
        {cache.limit === null ? null : <meter id="disk-usage" min={0} max={cache.limit} value={cache.bytes} />}
        <p>
          {formatBytes(cache.bytes)} of {cache.limit === null ? 'no limit' : formatBytes(cache.limit)} · {cache.blobs} blobs · {cache.tags}{' '}
          tags
        </p>
      </div>
      <div>
        <h2>Hit ratio</h2>
        <p class="big" id="hit-ratio">{requests.hitRatio === null ? '—' : `${(requests.hitRatio * 100).toFixed(1)} %`}</p>
        <p class="muted">
          since start: {requests.hit} hits, {requests.stale} stale, {requests.miss} misses, {requests.joined} joined
        </p>
      </div>
      <div>
        <h2>Traffic since start</h2>
        <p>served {formatBytes(bytes.served)}</p>
        <p>pulled upstream {formatBytes(bytes.upstream)}</p>
        <p class="muted">
          {stats.fillsInFlight} downloads running · {stats.warmJobsRunning} warm jobs running
        </p>
      </div>
    </section>
  );
}

function ImageRows({ images }: { images: CachedImage[] }) {
  return (
    <tbody id="images-body">
      {images.map((i) => (
        <tr data-ref={`${i.repository}:${i.tag}`}>
          <td>{i.repository}</td>
          <td>{i.tag}</td>
          <td>{i.upstream}</td>
          <td title={i.digest}>
            <code>{i.digest.slice(7, 19)}</code>
          </td>
          <td>
            {i.platforms.length ? i.platforms.join(', ') : <span class="muted">single manifest</span>}
            {i.uncachedPlatforms.length ? <span class="muted"> (not cached: {i.uncachedPlatforms.join(', ')})</span> : null}
          </td>
          <td class="num" data-value={String(i.size)}>{formatBytes(i.size)}</td>
          <td class="num" data-value={String(i.hits)}>{i.hits}</td>
          <td data-value={time(i.lastPulled)}>{when(i.lastPulled)}</td>
        </tr>
      ))}
    </tbody>
  );
}

function JobRows({ jobs }: { jobs: JobView[] }) {
  return (
    <tbody id="jobs-body">
      {jobs.map((j) => (
        <tr data-id={j.id} data-state={j.state}>
          <td><code>{j.id}</code></td>
          <td>{j.state}</td>
          <td>
            {j.images.filter((i) => i.state === 'done').length} of {j.images.length} done
            {j.errors.length ? <span class="error"> · {j.errors.length} failed</span> : null}
          </td>
          <td>{formatBytes(j.bytesDone)} of {formatBytes(j.bytesTotal)}</td>
          <td>{when(j.createdAt)}</td>
        </tr>
      ))}
    </tbody>
  );
}

/** The parts of the page a finished warm changes, which the page's script fetches to replace its own. */
export function adminPageParts(data: AdminPageData) {
  return (
    <div>
      <Stats stats={data.stats} />
      <table>
        <ImageRows images={data.images} />
      </table>
      <table>
        <JobRows jobs={data.jobs} />
      </table>
    </div>
  );
}

export function adminPage(props: AdminPageData & { nonce: string }) {
  const jobEnded = JSON.stringify('admin:job-ended');
  const script = `(${imagesTableScript.toString()})(${jobEnded});\n(${warmFormScript.toString()})(${formatBytes.toString()}, ${jobEnded});`;
  return (
    <Page nonce={props.nonce} title="acr-mirror admin">
      <header>
        <h1>acr-mirror admin</h1>
        <form method="post" action="/admin/ui/logout">
          <button type="submit">Log out</button>
        </form>
      </header>

      <Stats stats={props.stats} />

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
          <button id="warm-submit" type="submit">
            Warm
          </button>
          <span id="warm-error" class="error" />
        </form>
        <div id="warm-progress" hidden>
          <p>
            Job <code id="job-id" />: <strong id="job-state" /> <span id="job-bytes" class="muted" />
          </p>
          <progress id="job-progress" />
          <table>
            <thead>
              <tr><th>Image</th><th>State</th><th>Progress</th><th>Bytes</th><th>Details</th></tr>
            </thead>
            <tbody id="job-images-body" />
          </table>
        </div>
      </section>

      <section>
        <h2>Cached images</h2>
        <input id="images-filter" type="search" placeholder="Filter by name, tag, platform…" />
        <table id="images">
          <thead>
            <tr>
              <th data-sort="text">Repository</th>
              <th data-sort="text">Tag</th>
              <th data-sort="text">Upstream</th>
              <th data-sort="text">Digest</th>
              <th data-sort="text">Platforms</th>
              <th data-sort="number">Size</th>
              <th data-sort="number">Hits</th>
              <th data-sort="number">Last pulled</th>
            </tr>
          </thead>
          <ImageRows images={props.images} />
        </table>
      </section>

      <section>
        <h2>Recent warm jobs</h2>
        <table>
          <thead>
            <tr><th>Job</th><th>State</th><th>Images</th><th>Bytes</th><th>Started</th></tr>
          </thead>
          <JobRows jobs={props.jobs} />
        </table>
      </section>
      <script nonce={props.nonce} dangerouslySetInnerHTML={{ __html: script }} />
    </Page>
  );
}
