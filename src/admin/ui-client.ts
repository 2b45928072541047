import type { JobView } from './jobs.js';

/**
 * The admin page's scripts, run in the browser. The page embeds each function's source, so they must not use
 * anything from their module scope; what they need is passed in. They talk through DOM events (PageEvents): a
 * change (a warm job ended, a tag was deleted) makes the console refresh the page's parts at once, a refresh
 * announces itself so the tables re-apply their sorting and filter, and a job to show goes to the job panel.
 */
export interface PageEvents {
  changed: string;
  refreshed: string;
  showJob: string;
}

/** Sorting and filtering of the images table, kept across refreshes. */
export function imagesTableScript(events: PageEvents): void {
  const table = document.getElementById('images') as HTMLTableElement;
  const filter = document.getElementById('images-filter') as HTMLInputElement;
  const headers = Array.from(table.tHead!.rows[0]!.cells);
  let sortColumn = -1;
  let ascending = true;

  const applyFilter = () => {
    const query = filter.value.trim().toLowerCase();
    for (const row of Array.from(table.tBodies[0]!.rows)) {
      const text = Array.from(row.cells).filter((c) => !c.classList.contains('actions')).map((c) => c.textContent ?? '').join(' ');
      row.hidden = query !== '' && !text.toLowerCase().includes(query);
    }
  };

  const applySort = () => {
    headers.forEach((th, i) => th.dataset.sort && th.setAttribute('aria-sort', i === sortColumn ? (ascending ? 'ascending' : 'descending') : 'none'));
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

  headers.forEach((th, i) => {
    if (!th.dataset.sort) return;
    th.addEventListener('click', () => {
      ascending = sortColumn === i ? !ascending : true;
      sortColumn = i;
      applySort();
    });
  });
  filter.addEventListener('input', applyFilter);
  document.addEventListener(events.refreshed, () => {
    applyFilter();
    applySort();
  });
}

/** The images table's delete buttons: confirm, DELETE the tag through the admin API, then refresh. */
export function deleteTagScript(events: PageEvents): void {
  const error = document.getElementById('images-error') as HTMLElement;

  const remove = async (row: HTMLTableRowElement) => {
    const { ref, upstream } = row.dataset as { ref: string; upstream: string };
    const question = `Remove the tag ${ref} (upstream ${upstream}) from the cache?\n\nIts manifests and blobs stay until eviction reclaims them; the next pull asks the upstream again.`;
    if (!confirm(question)) return;
    error.textContent = '';
    const res = await fetch(`/admin/images/${encodeURI(ref)}?upstream=${encodeURIComponent(upstream)}`, {
      method: 'DELETE',
      credentials: 'same-origin',
      // The mirror lets the session cookie change state only with this header (guard.ts), which no cross-site form can send.
      headers: { 'x-requested-with': 'acr-mirror' },
    });
    if (res.status === 401) return location.reload();
    if (!res.ok) {
      const body = (await res.json().catch(() => ({}))) as { errors?: { message: string }[] };
      error.textContent = `${ref}: ${body.errors?.[0]?.message ?? `delete refused (${res.status})`}`;
      return;
    }
    row.remove();
    document.dispatchEvent(new Event(events.changed));
  };

  document.getElementById('images')!.addEventListener('click', (e) => {
    const row = (e.target as Element).closest('button.delete')?.closest('tr');
    if (row) void remove(row);
  });
}

/** The warm form: starts a job and hands it to the job panel. */
export function warmFormScript(events: PageEvents): void {
  const byId = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
  const form = byId<HTMLFormElement>('warm-form');
  const formError = byId<HTMLElement>('warm-error');

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
        body: JSON.stringify({ images, platforms, referrers: byId<HTMLInputElement>('warm-referrers').checked }),
      });
      if (res.status === 401) return location.reload();
      const body = (await res.json()) as JobView & { errors?: { message: string }[] };
      if (res.status !== 202) {
        formError.textContent = body.errors?.[0]?.message ?? `warm refused (${res.status})`;
        return;
      }
      document.dispatchEvent(new CustomEvent(events.showJob, { detail: body }));
    })();
  });
}
