import type { JobView } from './jobs.js';

/**
 * The admin page's scripts, run in the browser. The page embeds each function's source, so they must not use
 * anything from their module scope; what they need is passed in. They talk through one DOM event: the warm form
 * announces a finished job (JOB_ENDED) and the images table refreshes the parts of the page a warm changes.
 */

/** Sorting and filtering of the images table, and a fresh rendering of the changed parts after a warm. */
export function imagesTableScript(jobEnded: string): void {
  const byId = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
  const table = byId<HTMLTableElement>('images');
  const filter = byId<HTMLInputElement>('images-filter');
  let sortColumn = -1;
  let ascending = true;

  const applyFilter = () => {
    const query = filter.value.trim().toLowerCase();
    for (const row of Array.from(table.tBodies[0]!.rows)) {
      row.hidden = query !== '' && !(row.textContent ?? '').toLowerCase().includes(query);
    }
  };

  const applySort = () => {
    const headers = Array.from(table.tHead!.rows[0]!.cells);
    headers.forEach((th, i) => th.setAttribute('aria-sort', i === sortColumn ? (ascending ? 'ascending' : 'descending') : 'none'));
    if (sortColumn < 0) return;
    const numeric = headers[sortColumn]!.dataset.sort === 'number';
    const value = (row: HTMLTableRowElement) => {
      const cell = row.cells[sortColumn]!;
      return cell.dataset.value ?? cell.textContent ?? '';
    };
    const rows = Array.from(table.tBodies[0]!.rows).sort((a, b) => {
      const order = numeric ? Number(value(a)) - Number(value(b)) : value(a).localeCompare(value(b));
      return ascending ? order : -order;
    });
    table.tBodies[0]!.append(...rows);
  };

  Array.from(table.tHead!.rows[0]!.cells).forEach((th, i) => {
    th.addEventListener('click', () => {
      ascending = sortColumn === i ? !ascending : true;
      sortColumn = i;
      applySort();
    });
  });
  filter.addEventListener('input', applyFilter);

  /** Replaces the parts of the page that a finished warm changes with a fresh rendering of it. */
  const refresh = async () => {
    const res = await fetch('/admin/ui/parts', { credentials: 'same-origin' });
    if (!res.ok) return;
    const fresh = new DOMParser().parseFromString(await res.text(), 'text/html');
    for (const id of ['stats', 'images-body', 'jobs-body']) {
      const replacement = fresh.getElementById(id);
      if (replacement) byId(id).replaceWith(document.importNode(replacement, true));
    }
    applyFilter();
    applySort();
  };
  document.addEventListener(jobEnded, () => void refresh());
}

/** The warm form, with live progress from the job's event stream. */
export function warmFormScript(formatBytes: (bytes: number) => string, jobEnded: string): void {
  const byId = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
  const form = byId<HTMLFormElement>('warm-form');
  const formError = byId<HTMLElement>('warm-error');

  const cell = (row: HTMLTableRowElement, content: string | Node) => {
    const td = row.insertCell();
    td.append(content);
    return td;
  };

  const meter = (done: number, total: number) => {
    const bar = document.createElement('progress');
    bar.max = Math.max(total, 1);
    bar.value = total ? done : 0;
    return bar;
  };

  const render = (job: JobView) => {
    byId('warm-progress').hidden = false;
    byId('job-id').textContent = job.id;
    const state = byId('job-state');
    state.textContent = job.state;
    state.dataset.state = job.state;
    byId('job-bytes').textContent = `${formatBytes(job.bytesDone)} of ${formatBytes(job.bytesTotal)}`;
    byId('job-progress').replaceWith(Object.assign(meter(job.bytesDone, job.bytesTotal), { id: 'job-progress' }));
    const body = byId<HTMLTableSectionElement>('job-images-body');
    body.replaceChildren();
    for (const image of job.images) {
      const row = body.insertRow();
      row.dataset.state = image.state;
      cell(row, image.ref);
      cell(row, image.state);
      cell(row, meter(image.bytesDone, image.bytesTotal));
      cell(row, image.bytesTotal ? `${formatBytes(image.bytesDone)} of ${formatBytes(image.bytesTotal)}` : '');
      cell(row, [image.platforms?.join(', '), image.error].filter(Boolean).join(' ')).className = image.error ? 'error' : '';
    }
  };

  const follow = (id: string) => {
    const events = new EventSource(`/admin/jobs/${encodeURIComponent(id)}/events`);
    events.addEventListener('progress', (e) => render(JSON.parse((e as MessageEvent<string>).data) as JobView));
    events.addEventListener('end', (e) => {
      events.close();
      render(JSON.parse((e as MessageEvent<string>).data) as JobView);
      document.dispatchEvent(new Event(jobEnded));
    });
  };

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    formError.textContent = '';
    const images = byId<HTMLTextAreaElement>('warm-images').value.split('\n').map((s) => s.trim()).filter(Boolean);
    const wanted = byId<HTMLInputElement>('warm-platforms').value.trim();
    const platforms = wanted === '' || wanted === 'all' ? 'all' : wanted.split(/[\s,]+/).filter(Boolean);
    void (async () => {
      const res = await fetch('/admin/warm', {
        method: 'POST',
        credentials: 'same-origin',
        // The mirror lets the session cookie change state only with this header (guard.ts), which no cross-site form can send.
        headers: { 'content-type': 'application/json', 'x-requested-with': 'acr-mirror' },
        body: JSON.stringify({ images, platforms }),
      });
      if (res.status === 401) return location.reload();
      const body = (await res.json()) as JobView & { errors?: { message: string }[] };
      if (res.status !== 202) {
        formError.textContent = body.errors?.[0]?.message ?? `warm refused (${res.status})`;
        return;
      }
      render(body);
      follow(body.id);
    })();
  });

  const running = document.querySelector<HTMLElement>('#jobs-body tr[data-state="running"]');
  if (running?.dataset.id) follow(running.dataset.id);
}
