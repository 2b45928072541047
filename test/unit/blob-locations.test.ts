import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { Metrics } from '../../src/observability/metrics.js';
import type { RegistryClient } from '../../src/upstream/client.js';
import { linkExpiry } from '../../src/upstream/redirects.js';
import { createUpstreamClients, type UpstreamClients } from '../../src/upstream/upstreams.js';
import { FakeUpstream, makeImage } from '../support/fake-upstream.js';

let fake: FakeUpstream;
let upstreams: UpstreamClients;
let client: RegistryClient;
let clock: number;

beforeEach(() => {
  fake = new FakeUpstream();
  clock = Date.now();
  const config = parseConfig(
    { upstreams: { acr: { url: 'https://registry.test', token_realms: ['auth.test'], username: fake.user, password_env: 'PW' } } },
    { env: { PW: fake.password }, baseDir: '/tmp', source: 'test' },
  );
  upstreams = createUpstreamClients(config, { log: pino({ level: 'silent' }), metrics: new Metrics(), now: () => clock, fetch: fake.fetch, sleep: async () => {} });
  client = upstreams.clients.get('acr')!;
});
afterEach(() => upstreams.close());

const registryBlobGets = () => fake.count({ host: 'registry.test', method: 'GET', pathIncludes: '/blobs/', authorized: true });
const ossGets = () => fake.count({ host: 'oss.test', method: 'GET' });

async function read(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

function layer(size: number): [string, Buffer] {
  const img = fake.add(makeImage('team/app', 'v1', [size]));
  return [...img.blobs.entries()].find(([, b]) => b.length === size)!;
}

describe('signed blob locations', () => {
  it('locateBlob returns the signed link and reuses it: the registry is asked once', async () => {
    const [digest] = layer(1000);
    const link = await client.locateBlob('team/app', digest);
    expect(link).toBe(`https://oss.test/blobs/${digest}?Expires=9999999999&Signature=sig`);
    expect(await client.locateBlob('team/app', digest)).toBe(link);
    expect(registryBlobGets()).toBe(1);
    expect(ossGets()).toBe(0);
  });

  it('a resume and a second range use the stored link without asking the registry again', async () => {
    const [digest, bytes] = layer(1000);
    const first = await client.openBlob('team/app', digest, { start: 0 });
    expect((await read(first.body)).equals(bytes)).toBe(true);
    const resumed = await client.openBlob('team/app', digest, { start: 400 });
    expect(resumed.start).toBe(400);
    expect((await read(resumed.body)).equals(bytes.subarray(400))).toBe(true);
    const bounded = await client.openBlob('team/app', digest, { start: 10, end: 19 });
    expect((await read(bounded.body)).equals(bytes.subarray(10, 20))).toBe(true);
    expect(fake.calls.filter((c) => c.host === 'oss.test').map((c) => c.range)).toEqual([null, 'bytes=400-', 'bytes=10-19']);
    expect(registryBlobGets()).toBe(1);
  });

  it('when storage refuses the stored link (403), one fresh link is asked for and used', async () => {
    const [digest, bytes] = layer(1000);
    await read((await client.openBlob('team/app', digest, { start: 0 })).body);
    let refusals = 1;
    fake.intercept = (call) =>
      call.host === 'oss.test' && refusals-- > 0 ? new Response('<Error><Code>AccessDenied</Code><Message>Request has expired.</Message></Error>', { status: 403 }) : undefined;
    const again = await client.openBlob('team/app', digest, { start: 500 });
    expect((await read(again.body)).equals(bytes.subarray(500))).toBe(true);
    expect(registryBlobGets()).toBe(2);
    expect(ossGets()).toBe(3);
    // The fresh link is kept in turn.
    await read((await client.openBlob('team/app', digest, { start: 900 })).body);
    expect(registryBlobGets()).toBe(2);
  });

  it('a link past its Expires (less a margin) is not used: the registry signs a new one', async () => {
    const [digest] = layer(1000);
    fake.linkExpires = Math.floor(clock / 1000) + 60;
    await client.locateBlob('team/app', digest);
    clock += 45_000;
    await client.locateBlob('team/app', digest);
    expect(registryBlobGets()).toBe(1);
    clock += 6_000;
    await client.locateBlob('team/app', digest);
    expect(registryBlobGets()).toBe(2);
  });

  it('reads expiry from OSS/S3 v2 Expires and S3 v4 X-Amz-Date + X-Amz-Expires', () => {
    expect(linkExpiry(new URL('https://b.oss-cn-hangzhou.aliyuncs.com/x?Expires=1700000000&Signature=s'))).toBe(1_700_000_000_000);
    expect(linkExpiry(new URL('https://s3.test/x?X-Amz-Date=20240102T030405Z&X-Amz-Expires=600&X-Amz-Signature=s'))).toBe(Date.UTC(2024, 0, 2, 3, 4, 5) + 600_000);
    expect(linkExpiry(new URL('https://cdn.test/x?sig=s'))).toBe(Number.POSITIVE_INFINITY);
  });
});
