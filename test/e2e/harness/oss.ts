import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { startNginx } from './nginx.js';

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
  /** nginx `limit_rate` for each blob download, e.g. "20m": OSS throttles each connection (x-oss-traffic-limit). */
  limitRate?: string;
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
  const errorLogPath = join(dir, 'nginx-error.log');
  const accessLogPath = join(dir, 'nginx-access.log');
  const url = `http://127.0.0.1:${opts.port}`;
  const daemon = await startNginx({
    what: 'nginx',
    dir,
    errorLog: errorLogPath,
    errorLevel: 'info',
    accessLog: accessLogPath,
    probe: { url: `${url}/`, statuses: [403] },
    http: `
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
      if ($secure_link = "0") { return 462; }${opts.limitRate ? `
      limit_rate ${opts.limitRate};` : ''}
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
  }`,
  });
  return { url, errorLogPath, accessLogPath, pid: daemon.pid, stop: () => daemon.stop() };
}
