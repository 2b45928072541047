import { Writable } from 'node:stream';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { RequestLines } from '../../src/observability/request-lines.js';
import { acceptedTypes } from '../../src/proxy/media-types.js';

function capture(level: string): { log: pino.Logger; writes: string[] } {
  const writes: string[] = [];
  const log = pino({ level, base: { service: 'acr-mirror' } }, new Writable({ write: (chunk, _enc, done) => void (writes.push(String(chunk)), done()) }));
  return { log, writes };
}

describe('RequestLines', () => {
  it('writes the lines of one turn of the event loop together, each one JSON object shaped like a pino line', async () => {
    const { log, writes } = capture('info');
    const lines = new RequestLines(log);
    lines.write({ requestId: 'a', method: 'GET', path: '/v2/x/manifests/"q"', status: 200, user: undefined, ms: 1.5 });
    lines.write({ requestId: 'b', method: 'HEAD', status: 404 });
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

  it('writes nothing when info is not logged', async () => {
    const { log, writes } = capture('warn');
    new RequestLines(log).write({ requestId: 'a' });
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
