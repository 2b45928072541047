import type { PageEvents } from './ui-client.js';

// Browser code embedded in the admin page by its source, like ui-client.ts: nothing from module scope.

/** Shows each <time datetime> in the browser's time zone, with the zone's name; the server's UTC text becomes its tooltip. */
export function localTimes(): void {
  const format = (date: Date, seconds: boolean) => {
    const parts = new Intl.DateTimeFormat(undefined, {
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      ...(seconds ? { second: '2-digit' } : {}),
      hourCycle: 'h23',
      timeZoneName: 'short',
    }).formatToParts(date);
    const part = (type: Intl.DateTimeFormatPartTypes) => parts.find((p) => p.type === type)?.value ?? '';
    const time = [part('hour'), part('minute'), ...(seconds ? [part('second')] : [])].join(':');
    return `${part('year')}-${part('month')}-${part('day')} ${time} ${part('timeZoneName')}`;
  };
  for (const time of Array.from(document.querySelectorAll<HTMLTimeElement>('time[datetime]:not([data-local])'))) {
    const date = new Date(time.dateTime);
    if (Number.isNaN(date.getTime())) continue;
    time.title = time.textContent ?? '';
    time.textContent = format(date, time.dataset.seconds === 'true');
    time.dataset.local = 'true';
  }
}

/**
 * Keeps the page current: every refreshMs (while the auto-refresh box is ticked and the tab is visible), on coming
 * back to the tab, and at once after a change, it fetches a fresh rendering of the page's parts and swaps them in.
 * The "updated" time is the server's; a failed refresh says so beside it. An ended session reloads to the login form.
 */
export function consoleScript(show: typeof localTimes, events: PageEvents, refreshMs: number): void {
  const PARTS = ['updated-at', 'upstreams', 'stats', 'traffic', 'images-body', 'jobs-body'];
  const status = document.getElementById('refresh-status') as HTMLElement;
  const auto = document.getElementById('auto-refresh') as HTMLInputElement;
  let running = false;
  let again = false;

  const refresh = async (): Promise<void> => {
    if (running) {
      again = true; // what changed during this refresh may have missed it
      return;
    }
    running = true;
    try {
      const res = await fetch('/admin/ui/parts', { credentials: 'same-origin' });
      if (res.status === 401) return location.reload();
      if (!res.ok) throw new Error(`the mirror answered ${res.status}`);
      const fresh = new DOMParser().parseFromString(await res.text(), 'text/html');
      for (const id of PARTS) {
        const replacement = fresh.getElementById(id);
        if (replacement) document.getElementById(id)!.replaceWith(document.importNode(replacement, true));
      }
      status.textContent = '';
      show();
      document.dispatchEvent(new Event(events.refreshed));
    } catch (err) {
      status.textContent = `refresh failed: ${(err as Error).message}`;
    } finally {
      running = false;
      if (again) {
        again = false;
        void refresh();
      }
    }
  };

  setInterval(() => auto.checked && !document.hidden && void refresh(), refreshMs);
  document.addEventListener('visibilitychange', () => auto.checked && !document.hidden && void refresh());
  document.addEventListener(events.changed, () => void refresh());
  show();
}
