import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startDaemon, waitReady } from './proc.js';

/** Shared by nginx's secure_link_md5 and signUrl(). */
const SIGNING_SECRET = 'oss-test-signing-secret';
export const OSS_ACCESS_KEY_ID = 'test-ak';

/**
 * `path?Expires=..&OSSAccessKeyId=..&Signature=..` the way nginx checks it:
 * Signature = base64url(md5("<Expires><path> <secret>")) without padding. A negative ttl makes an expired link.
 */
export function signUrl(path: string, ttlSec: number): string {
  const expires = Math.floor(Date.now() / 1000) + ttlSec;
  const signature = createHash('md5').update(`${expires}${path} ${SIGNING_SECRET}`).digest('base64url');
  return `${path}?Expires=${expires}&OSSAccessKeyId=${OSS_ACCESS_KEY_ID}&Signature=${signature}`;
}

export interface OssOptions {
  dir: string;
  port: number;
  /** Served as the bucket: the registry's storage root. */
  root: string;
}

export interface Oss {
  url: string;
  errorLogPath: string;
  accessLogPath: string;
  pid: number;
  stop(): Promise<void>;
}

const xmlError = (code: string, message: string): string =>
  `'<?xml version="1.0" encoding="UTF-8"?>\\n<Error><Code>${code}</Code><Message>${message}</Message></Error>\\n'`;

/** nginx standing in for Alibaba OSS: static files behind expiring signed links (secure_link). */
export async function startOss(opts: OssOptions): Promise<Oss> {
  const dir = opts.dir;
  await mkdir(join(dir, 'tmp'), { recursive: true });
  const errorLogPath = join(dir, 'nginx-error.log');
  const accessLogPath = join(dir, 'nginx-access.log');
  // One process, no workers: as root, workers would switch to nobody and could not read the 0700 temp dirs.
  const conf = `
daemon off;
master_process off;
pid ${join(dir, 'nginx.pid')};
error_log ${errorLogPath} info;
events { worker_connections 1024; }
http {
  access_log ${accessLogPath};
  client_body_temp_path ${join(dir, 'tmp/body')};
  proxy_temp_path ${join(dir, 'tmp/proxy')};
  fastcgi_temp_path ${join(dir, 'tmp/fastcgi')};
  uwsgi_temp_path ${join(dir, 'tmp/uwsgi')};
  scgi_temp_path ${join(dir, 'tmp/scgi')};
  default_type application/octet-stream;
  sendfile on;
  server_tokens off;
  server {
    listen 127.0.0.1:${opts.port};
    root ${opts.root};
    # Codes 461/462 only route to the named locations below, which answer with OSS-like XML.
    error_page 461 = @badsig;
    error_page 462 = @expired;
    error_page 404 = @nosuchkey;
    location /docker/registry/v2/blobs/ {
      secure_link $arg_Signature,$arg_Expires;
      secure_link_md5 "$secure_link_expires$uri ${SIGNING_SECRET}";
      if ($secure_link = "") { return 461; }
      if ($secure_link = "0") { return 462; }
    }
    location / { return 461; }
    location @badsig {
      default_type application/xml;
      return 403 ${xmlError('SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided.')};
    }
    location @expired {
      default_type application/xml;
      return 403 ${xmlError('AccessDenied', 'Request has expired.')};
    }
    location @nosuchkey {
      default_type application/xml;
      return 404 ${xmlError('NoSuchKey', 'The specified key does not exist.')};
    }
  }
}
`;
  const confPath = join(dir, 'nginx.conf');
  await writeFile(confPath, conf);
  const daemon = startDaemon('/usr/sbin/nginx', ['-p', dir, '-e', errorLogPath, '-c', confPath], { PATH: process.env.PATH }, errorLogPath);
  const url = `http://127.0.0.1:${opts.port}`;
  try {
    await waitReady('nginx', daemon, errorLogPath, async () => {
      const res = await fetch(`${url}/`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      return res.status === 403;
    });
  } catch (err) {
    await daemon.stop();
    throw err;
  }
  return { url, errorLogPath, accessLogPath, pid: daemon.pid, stop: () => daemon.stop() };
}
