// A bare @hono/node-server answering GET/HEAD with one manifest from memory: the floor of any server on the
// same HTTP stack on this machine (scenario 4's reference).
//   node --import tsx bench/bare-hono.ts <port> <manifest file> <media type>
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { freePort } from '../test/e2e/harness/ports.js';
import { startHttpDaemon } from '../test/e2e/harness/proc.js';

export interface BareHono {
  url: string;
  stop(): Promise<void>;
}

/** Starts the bare server in its own process, serving `file` at every /v2/... path. */
export async function startBareHono(dir: string, file: string, mediaType: string): Promise<BareHono> {
  const port = await freePort();
  const log = join(dir, 'bare-hono.log');
  const url = `http://127.0.0.1:${port}`;
  const args = ['--import', 'tsx', import.meta.filename, String(port), file, mediaType];
  const daemon = await startHttpDaemon('bare hono', process.execPath, args, { PATH: process.env.PATH }, log, { url: `${url}/v2/`, statuses: [200] });
  return { url, stop: () => daemon.stop() };
}

if (process.argv[1] === import.meta.filename) {
  const [port, file, mediaType] = process.argv.slice(2) as [string, string, string];
  const body = readFileSync(file);
  const headers = { 'content-type': mediaType, 'content-length': String(body.length), 'docker-content-digest': 'sha256:0', 'docker-distribution-api-version': 'registry/2.0' };
  const app = new Hono();
  app.get('/v2/*', () => new Response(body, { headers }));
  serve({ fetch: app.fetch, port: Number(port), hostname: '127.0.0.1' });
}
