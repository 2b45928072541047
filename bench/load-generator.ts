// A closed-loop HTTP/1.1 load generator over raw keep-alive sockets, run as its own process by loadTest():
//   node --import tsx bench/load-generator.ts '<LoadJob as JSON>'   ->   one LoadReport as JSON on stdout
// autocannon 9 and wrk 4.1 both wait for a body after a HEAD response with a Content-Length and so measure
// nothing for HEAD; this one knows the method it sent. Latency is per request, from write to last byte.
import { connect, type Socket } from 'node:net';

export interface LoadJob {
  url: string;
  method: 'GET' | 'HEAD';
  headers: Record<string, string>;
  connections: number;
  seconds: number;
}

export interface LoadReport {
  requests: number;
  /** From the first connect to the last response (requests in flight at the deadline finish). */
  seconds: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Responses by status code. */
  statuses: Record<string, number>;
  errors: string[];
}

const HEADER_END = Buffer.from('\r\n\r\n');

async function main(job: LoadJob): Promise<LoadReport> {
  const url = new URL(job.url);
  const head = [`${job.method} ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`, ...Object.entries(job.headers).map(([k, v]) => `${k}: ${v}`)];
  const request = Buffer.from(`${head.join('\r\n')}\r\n\r\n`, 'latin1');
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const errors: string[] = [];
  const started = performance.now();
  const deadline = started + job.seconds * 1000;

  const connection = (): Promise<void> =>
    new Promise((resolve) => {
      const socket: Socket = connect({ host: url.hostname, port: Number(url.port || 80), noDelay: true });
      let pending: Buffer = Buffer.alloc(0);
      let sentAt = 0;
      /** Body bytes still expected for the current response; -1 while reading headers. */
      let bodyLeft = -1;
      const send = () => {
        if (performance.now() >= deadline) return void socket.end();
        sentAt = performance.now();
        socket.write(request);
      };
      const fail = (message: string) => {
        if (errors.length < 10) errors.push(message);
        socket.destroy();
      };
      socket.once('connect', send);
      socket.on('data', (chunk: Buffer) => {
        pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
        for (;;) {
          if (bodyLeft < 0) {
            const end = pending.indexOf(HEADER_END);
            if (end < 0) return;
            const headers = pending.toString('latin1', 0, end);
            const status = headers.slice(9, 12);
            statuses[status] = (statuses[status] ?? 0) + 1;
            if (/\r\ntransfer-encoding:/i.test(headers)) return fail('chunked responses are not supported');
            if (/\r\nconnection:\s*close/i.test(headers)) return fail('the server closed the connection');
            const length = /\r\ncontent-length:\s*(\d+)/i.exec(headers);
            bodyLeft = job.method === 'HEAD' ? 0 : Number(length?.[1] ?? 0);
            pending = pending.subarray(end + HEADER_END.length);
          }
          if (pending.length < bodyLeft) {
            bodyLeft -= pending.length;
            pending = Buffer.alloc(0);
            return;
          }
          pending = pending.subarray(bodyLeft);
          bodyLeft = -1;
          latencies.push(performance.now() - sentAt);
          send();
        }
      });
      socket.once('error', (err) => fail(err.message));
      socket.once('close', () => resolve());
    });

  const watchdog = setTimeout(() => process.exit(3), job.seconds * 1000 + 30_000);
  await Promise.all(Array.from({ length: job.connections }, connection));
  clearTimeout(watchdog);
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.max(0, Math.ceil(q * latencies.length) - 1))] ?? NaN;
  return { requests: latencies.length, seconds, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: at(1), statuses, errors };
}

const report = await main(JSON.parse(process.argv[2] ?? '{}') as LoadJob);
process.stdout.write(`${JSON.stringify(report)}\n`);
