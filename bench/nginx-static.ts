import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from '../test/e2e/harness/ports.js';
import { startNginx } from '../test/e2e/harness/nginx.js';

export interface NginxStatic {
  url: string;
  /** Files put here are served at `${url}/<name>`. */
  root: string;
  stop(): Promise<void>;
}

/** nginx (one process, sendfile) serving a directory as is: the practical limit for warm reads. */
export async function startNginxStatic(dir: string): Promise<NginxStatic> {
  const root = join(dir, 'root');
  await mkdir(root, { recursive: true });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const daemon = await startNginx({
    what: 'nginx (static)',
    dir,
    errorLog: join(dir, 'error.log'),
    errorLevel: 'warn',
    accessLog: join(dir, 'access.log'),
    probe: { url: `${url}/`, statuses: [403, 404] },
    http: `
  tcp_nopush on;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:${port};
    root ${root};
  }`,
  });
  return { url, root, stop: () => daemon.stop() };
}
