import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Daemon, startHttpDaemon } from './proc.js';

export interface NginxOptions {
  /** For messages: which nginx this is. */
  what: string;
  /** Working directory: nginx.conf, pid and temp files go here. */
  dir: string;
  errorLog: string;
  errorLevel: 'warn' | 'info';
  accessLog: string;
  /** Directives of the http block after the common ones, the server block included. */
  http: string;
  /** Answered by GET / once nginx is up. */
  probe: { url: string; statuses: readonly number[] };
}

/**
 * One nginx process with its files under dir. No workers (master_process off): as root, workers would switch to
 * nobody and could not read the 0700 temp dirs.
 */
export async function startNginx(o: NginxOptions): Promise<Daemon> {
  await mkdir(join(o.dir, 'tmp'), { recursive: true });
  const conf = `
daemon off;
master_process off;
pid ${join(o.dir, 'nginx.pid')};
error_log ${o.errorLog} ${o.errorLevel};
events { worker_connections 1024; }
http {
  access_log ${o.accessLog};
  client_body_temp_path ${join(o.dir, 'tmp/body')};
  proxy_temp_path ${join(o.dir, 'tmp/proxy')};
  fastcgi_temp_path ${join(o.dir, 'tmp/fastcgi')};
  uwsgi_temp_path ${join(o.dir, 'tmp/uwsgi')};
  scgi_temp_path ${join(o.dir, 'tmp/scgi')};
  default_type application/octet-stream;
  sendfile on;
  server_tokens off;
${o.http}
}
`;
  const confPath = join(o.dir, 'nginx.conf');
  await writeFile(confPath, conf);
  return startHttpDaemon(o.what, '/usr/sbin/nginx', ['-p', o.dir, '-e', o.errorLog, '-c', confPath], { PATH: process.env.PATH }, o.errorLog, o.probe);
}
