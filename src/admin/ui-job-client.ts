import type { JobView } from './jobs.js';
import type { PageEvents } from './ui-client.js';

// Browser code embedded in the admin page by its source, like ui-client.ts: nothing from module scope.

/** Shows a job in the page's job panel: its state, a bar per image and overall (marked failed when it failed), errors. */
export function renderJob(job: JobView, formatBytes: (bytes: number) => string): void {
  const byId = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
  const bar = (done: number, total: number, state: string) => {
    const progress = document.createElement('progress');
    progress.max = Math.max(total, 1);
    progress.value = total ? done : 0;
    progress.dataset.state = state;
    return progress;
  };
  const cell = (row: HTMLTableRowElement, content: string | Node) => {
    const td = row.insertCell();
    td.append(content);
    return td;
  };

  byId('warm-progress').hidden = false;
  byId('job-id').textContent = job.id;
  const state = byId('job-state');
  state.textContent = job.state;
  state.dataset.state = job.state;
  byId('job-bytes').textContent = `${formatBytes(job.bytesDone)} of ${formatBytes(job.bytesTotal)}`;
  const failed = job.errors.length ? `${job.errors.length} of ${job.images.length} images failed` : '';
  byId('job-error').textContent = [job.error, failed].filter(Boolean).join('; ');
  byId('job-progress').replaceWith(Object.assign(bar(job.bytesDone, job.bytesTotal, job.state), { id: 'job-progress' }));
  const body = byId<HTMLTableSectionElement>('job-images-body');
  body.replaceChildren();
  for (const image of job.images) {
    const row = body.insertRow();
    row.dataset.state = image.state;
    cell(row, image.ref);
    cell(row, image.state).dataset.state = image.state;
    cell(row, bar(image.bytesDone, image.bytesTotal, image.state));
    cell(row, image.bytesTotal ? `${formatBytes(image.bytesDone)} of ${formatBytes(image.bytesTotal)}` : '');
    cell(row, [image.platforms?.join(', '), image.error].filter(Boolean).join(' ')).className = image.error ? 'error' : '';
  }
}

/**
 * The job panel: a job just started (from the warm form) or clicked in the recent jobs list is shown, and followed
 * through its event stream while it runs; its end announces a change. A job running when the page loads is followed.
 */
export function jobPanelScript(formatBytes: (bytes: number) => string, render: typeof renderJob, events: PageEvents): void {
  let stream: EventSource | null = null;
  let shown = '';

  const markShown = () => {
    for (const row of Array.from(document.querySelectorAll<HTMLElement>('#jobs-body tr'))) row.setAttribute('aria-selected', String(row.dataset.id === shown));
  };
  const show = (job: JobView) => {
    render(job, formatBytes);
    shown = job.id;
    markShown();
  };
  const follow = (id: string) => {
    stream?.close();
    const source = new EventSource(`/admin/jobs/${encodeURIComponent(id)}/events`);
    stream = source;
    source.addEventListener('progress', (e) => shown === id && show(JSON.parse((e as MessageEvent<string>).data) as JobView));
    source.addEventListener('end', (e) => {
      source.close();
      if (shown === id) show(JSON.parse((e as MessageEvent<string>).data) as JobView);
      document.dispatchEvent(new Event(events.changed));
    });
  };
  const open = async (id: string) => {
    const res = await fetch(`/admin/jobs/${encodeURIComponent(id)}`, { credentials: 'same-origin' });
    if (res.status === 401) return location.reload();
    if (!res.ok) return;
    const job = (await res.json()) as JobView;
    show(job);
    if (job.state === 'running') follow(job.id);
  };

  document.addEventListener(events.showJob, (e) => {
    const job = (e as CustomEvent<JobView>).detail;
    show(job);
    follow(job.id);
  });
  document.getElementById('jobs')!.addEventListener('click', (e) => {
    const id = (e.target as Element).closest<HTMLElement>('tr[data-id]')?.dataset.id;
    if (!id) return;
    void open(id).then(() => document.getElementById('warm-progress')!.scrollIntoView({ block: 'nearest' }));
  });
  document.addEventListener(events.refreshed, markShown);
  const running = document.querySelector<HTMLElement>('#jobs-body tr[data-state="running"]')?.dataset.id;
  if (running) void open(running);
}
