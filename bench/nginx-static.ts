import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from '../test/e2e/harness/ports.js';
import { startDaemon, waitReady } from '../test/e2e/harness/proc.js';

export interface NginxStatic {
  url: string;
  /** Files put here are served at `${url}/<name>`. */
  root: string;
  stop(): Promise<void>;
}

/** nginx (one process, sendfile) serving a directory as is: the practical limit for warm reads. */
export async function startNginxStatic(dir: string): Promise<NginxStatic> {
  const root = join(dir, 'root');
  await mkdir(join(dir, 'tmp'), { recursive: true });
  await mkdir(root, { recursive: true });
  const port = await freePort();
  const errorLog = join(dir, 'error.log');
  // master_process off: as root, workers would switch to nobody and could not read the 0700 temp dirs.
  const conf = `
daemon off;
master_process off;
pid ${join(dir, 'nginx.pid')};
error_log ${errorLog} warn;
events { worker_connections 1024; }
http {
  access_log ${join(dir, 'access.log')};
  client_body_temp_path ${join(dir, 'tmp/body')};
  proxy_temp_path ${join(dir, 'tmp/proxy')};
  fastcgi_temp_path ${join(dir, 'tmp/fastcgi')};
  uwsgi_temp_path ${join(dir, 'tmp/uwsgi')};
  scgi_temp_path ${join(dir, 'tmp/scgi')};
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  server_tokens off;
  server {
    listen 127.0.0.1:${port};
    root ${root};
  }
}
`;
  const confPath = join(dir, 'nginx.conf');
  await writeFile(confPath, conf);
  const daemon = startDaemon('/usr/sbin/nginx', ['-p', dir, '-e', errorLog, '-c', confPath], { PATH: process.env.PATH }, errorLog);
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitReady('nginx (static)', daemon, errorLog, async () => {
      const res = await fetch(`${url}/`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      return res.status === 403 || res.status === 404;
    });
  } catch (err) {
    await daemon.stop();
    throw err;
  }
  return { url, root, stop: () => daemon.stop() };
}
