import { formatBytes } from './format.js';
import type { CacheStats, CachedImage } from './inventory.js';
import type { JobView } from './jobs.js';
import type { TrafficMinute } from '../observability/traffic-history.js';
import type { UpstreamHealth } from '../upstream/health.js';
import { TrafficChart } from './ui-traffic.js';

/** What the page shows; the page's script fetches a fresh rendering of its parts (adminPageParts) to refresh. */
export interface AdminPageData {
  images: CachedImage[];
  stats: CacheStats;
  jobs: JobView[];
  upstreams: UpstreamHealth[];
  traffic: TrafficMinute[];
  /** When the data was read. */
  updatedAt: string;
}

/** A time in UTC, saying so; the page's script shows it in the browser's time zone (with that zone's name). */
export function Time({ iso, seconds }: { iso: string | null; seconds?: boolean }) {
  if (!iso) return <span class="muted">never</span>;
  const utc = `${iso.slice(0, 10)} ${iso.slice(11, seconds ? 19 : 16)} UTC`;
  return <time datetime={iso} data-seconds={seconds ? 'true' : undefined}>{utc}</time>;
}

const sortTime = (iso: string | null) => (iso ? String(Date.parse(iso)) : '0');

export function UpdatedAt({ at }: { at: string }) {
  return (
    <span id="updated-at">
      updated <Time iso={at} seconds />
    </span>
  );
}

function Breaker({ breaker }: { breaker: UpstreamHealth['breaker'] }) {
  const failures = `${breaker.failures} failure${breaker.failures === 1 ? '' : 's'} in a row`;
  if (breaker.state === 'half-open') return <>half-open: one request is probing the upstream ({failures})</>;
  if (breaker.state === 'open') return <>open after {failures}; next try <Time iso={breaker.retryAt} seconds /></>;
  return <>closed{breaker.failures ? ` (${failures})` : ''}</>;
}

export /** Red while it is the latest news of the upstream; muted once an exchange succeeded after it. */
function LastError({ error, lastSuccess }: { error: NonNullable<UpstreamHealth['lastError']>; lastSuccess: string | null }) {
  const recovered = lastSuccess !== null && Date.parse(lastSuccess) > Date.parse(error.at);
  return (
    <>
      <Time iso={error.at} /> <code>{error.kind}</code> <span class={recovered ? 'muted' : 'error'}>{error.message}</span>
      {recovered ? <span class="muted"> (succeeded since)</span> : null}
    </>
  );
}

export function UpstreamCards({ upstreams }: { upstreams: UpstreamHealth[] }) {
  return (
    <section id="upstreams" class="cards" aria-label="Upstreams">
      {upstreams.map((u) => (
        <div class="card" data-upstream={u.name} data-state={u.state}>
          <h2>
            {u.name} <span class="badge" data-state={u.state}>{u.state}</span>
          </h2>
          <p class="muted">{u.host}</p>
          <dl>
            <dt>Last success</dt>
            <dd><Time iso={u.lastSuccess} /></dd>
            <dt>Last error</dt>
            <dd>
              {u.lastError ? <LastError error={u.lastError} lastSuccess={u.lastSuccess} /> : <span class="muted">none</span>}
            </dd>
            <dt>Breaker</dt>
            <dd><Breaker breaker={u.breaker} /></dd>
          </dl>
        </div>
      ))}
    </section>
  );
}

function DiskUse({ cache }: { cache: CacheStats['cache'] }) {
  if (cache.limit !== null) {
    return (
      <>
        <meter id="disk-usage" min={0} max={cache.limit} value={cache.bytes} />
        <p>{formatBytes(cache.bytes)} of {formatBytes(cache.limit)}</p>
      </>
    );
  }
  return (
    <p>
      {formatBytes(cache.bytes)} of no limit
      {cache.free === null ? null : <span id="disk-free"> · {formatBytes(cache.free)} free on disk</span>}
    </p>
  );
}

export function Stats({ stats }: { stats: CacheStats }) {
  const { cache, requests, bytes } = stats;
  return (
    <section id="stats" class="cards">
      <div>
        <h2>Disk</h2>
        <DiskUse cache={cache} />
        <p class="muted">{cache.blobs} blobs · {cache.manifests} manifests · {cache.tags} tags</p>
      </div>
      <div>
        <h2>Hit ratio</h2>
        <p class="big" id="hit-ratio">{requests.hitRatio === null ? '—' : `${(requests.hitRatio * 100).toFixed(1)} %`}</p>
        <p class="muted">
          since start: hits {requests.hit} · stale {requests.stale} · misses {requests.miss} · joined {requests.joined}
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

export function ImageRows({ images }: { images: CachedImage[] }) {
  return (
    <tbody id="images-body">
      {images.map((i) => (
        <tr data-ref={`${i.repository}:${i.tag}`} data-upstream={i.upstream}>
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
          <td class="num" data-value={String(i.referrers)}>{i.referrers}</td>
          <td class="num" data-value={String(i.hits)}>{i.hits}</td>
          <td data-value={sortTime(i.lastPulled)}><Time iso={i.lastPulled} /></td>
          <td class="actions">
            <button type="button" class="delete" title={`remove the tag ${i.repository}:${i.tag} from the cache`}>Delete</button>
          </td>
        </tr>
      ))}
    </tbody>
  );
}

export function JobRows({ jobs }: { jobs: JobView[] }) {
  return (
    <tbody id="jobs-body">
      {jobs.map((j) => (
        <tr data-id={j.id} data-state={j.state}>
          <td><button type="button" class="link" title="show the job's images and errors">{j.id}</button></td>
          <td data-state={j.state}>{j.state}</td>
          <td>
            {j.images.filter((i) => i.state === 'done').length} of {j.images.length} done
            {j.errors.length ? <span class="error"> · {j.errors.length} failed</span> : null}
          </td>
          <td>
            <progress max={Math.max(j.bytesTotal, 1)} value={j.bytesTotal ? j.bytesDone : 0} data-state={j.state} />
            <span class="muted">{formatBytes(j.bytesDone)} of {formatBytes(j.bytesTotal)}</span>
          </td>
          <td><Time iso={j.createdAt} /></td>
        </tr>
      ))}
    </tbody>
  );
}

/** Everything the page refreshes, each part under the id the page has it under. */
export function adminPageParts(data: AdminPageData) {
  return (
    <div>
      <UpdatedAt at={data.updatedAt} />
      <UpstreamCards upstreams={data.upstreams} />
      <Stats stats={data.stats} />
      <TrafficChart minutes={data.traffic} now={Date.parse(data.updatedAt)} />
      <table>
        <ImageRows images={data.images} />
      </table>
      <table>
        <JobRows jobs={data.jobs} />
      </table>
    </div>
  );
}
