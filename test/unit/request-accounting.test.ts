import { Writable } from 'node:stream';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/observability/metrics.js';
import { RequestAccounting, type RequestRecord } from '../../src/observability/request-accounting.js';
import { acceptedTypes } from '../../src/proxy/media-types.js';

function capture(level: string): { log: pino.Logger; writes: string[] } {
  const writes: string[] = [];
  const log = pino({ level, base: { service: 'acr-mirror' } }, new Writable({ write: (chunk, _enc, done) => void (writes.push(String(chunk)), done()) }));
  return { log, writes };
}

const answered = (status: number, line: Record<string, unknown> | null, cache?: string): RequestRecord => ({
  route: 'manifest',
  method: 'GET',
  status,
  seconds: 0.002,
  cache,
  line,
});

describe('RequestAccounting', () => {
  it('writes the lines of one turn of the event loop together, each one JSON object shaped like a pino line', async () => {
    const { log, writes } = capture('info');
    const accounting = new RequestAccounting(log, new Metrics());
    accounting.record(answered(200, { requestId: 'a', method: 'GET', path: '/v2/x/manifests/"q"', status: 200, user: undefined, ms: 1.5 }));
    accounting.record(answered(404, { requestId: 'b', method: 'HEAD', status: 404 }));
    accounting.record(answered(200, null));
    expect(writes).toEqual([]);
    await nextTurn();
    await nextTurn();
    expect(writes).toHaveLength(1);
    const parsed = writes[0]!.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(parsed).toEqual([
      { level: 30, time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/), service: 'acr-mirror', requestId: 'a', method: 'GET', path: '/v2/x/manifests/"q"', status: 200, ms: 1.5, msg: 'request' },
      { level: 30, time: expect.any(String), service: 'acr-mirror', requestId: 'b', method: 'HEAD', status: 404, msg: 'request' },
    ]);
    // Same keys, same order as pino's own line for the same fields.
    log.info({ requestId: 'c', status: 200 }, 'request');
    const own = JSON.parse(writes[1]!) as Record<string, unknown>;
    expect(Object.keys(own)).toEqual(['level', 'time', 'service', 'requestId', 'status', 'msg']);
  });

  it('counts every recorded request in the metrics, at the latest when they are scraped', async () => {
    const { log } = capture('warn');
    const metrics = new Metrics();
    const accounting = new RequestAccounting(log, metrics);
    metrics.sources.pending = accounting.flush;
    for (let i = 0; i < 3; i++) accounting.record(answered(200, null, 'hit'));
    accounting.record(answered(404, null, 'miss'));
    const text = await metrics.text();
    expect(text).toMatch(/acr_mirror_http_requests_total\{route="manifest",method="GET",status="200"\} 3\n/);
    expect(text).toMatch(/acr_mirror_http_requests_total\{route="manifest",method="GET",status="404"\} 1\n/);
    expect(text).toMatch(/acr_mirror_cache_requests_total\{kind="manifest",outcome="hit"\} 3\n/);
    expect(text).toMatch(/acr_mirror_http_request_duration_seconds_count\{route="manifest"\} 4\n/);
    accounting.record(answered(200, null, 'hit'));
    await nextTurn();
    expect(await metrics.text()).toMatch(/acr_mirror_http_requests_total\{route="manifest",method="GET",status="200"\} 4\n/);
  });

  it('writes no lines when info is not logged', async () => {
    const { log, writes } = capture('warn');
    new RequestAccounting(log, new Metrics()).record(answered(200, { requestId: 'a' }));
    await nextTurn();
    await nextTurn();
    expect(writes).toEqual([]);
  });
});

describe('acceptedTypes', () => {
  it('parses an Accept header once and gives the same types again', () => {
    const header = 'application/vnd.oci.image.index.v1+json;q=0.9, Application/Vnd.Docker.Distribution.Manifest.V2+json, application/vnd.oci.image.index.v1+json';
    const types = acceptedTypes(header);
    expect(types).toEqual(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.v2+json']);
    expect(acceptedTypes(header)).toBe(types);
    expect(Object.isFrozen(types)).toBe(true);
    expect(acceptedTypes(undefined)).toEqual([]);
    expect(acceptedTypes('')).toEqual([]);
  });
});
