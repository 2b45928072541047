import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { brokenStream, connectionRefused, FakeUpstream, makeImage, sha256 } from '../support/fake-upstream.js';
import { eventually } from '../support/eventually.js';
import { startTestMirror, type TestMirror } from '../support/mirror.js';

const OCI = 'application/vnd.oci.image.manifest.v1+json';
let fake: FakeUpstream;
let m: TestMirror;
let clock: number;

beforeEach(async () => {
  fake = new FakeUpstream();
  clock = Date.now();
  m = await startTestMirror(fake, { now: () => clock });
});
afterEach(async () => {
  await m.close();
});

const blobFile = (digest: string) => join(m.dir, 'data', 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));

describe('manifests', () => {
  it('serves the exact upstream bytes and headers by tag, then from cache', async () => {
    const img = fake.add(makeImage('team/app', 'v1', [1000]));
    const res = await m.request('/v2/team/app/manifests/v1', { headers: { accept: OCI } });
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(img.manifest)).toBe(true);
    expect(res.headers.get('content-type')).toBe(OCI);
    expect(res.headers.get('docker-content-digest')).toBe(img.manifestDigest);
    expect(res.headers.get('content-length')).toBe(String(img.manifest.length));
    expect(res.headers.get('x-cache')).toBe('miss');

    const before = fake.calls.length;
    const again = await m.request('/v2/team/app/manifests/v1');
    expect(again.headers.get('x-cache')).toBe('hit');
    expect(Buffer.from(await again.arrayBuffer()).equals(img.manifest)).toBe(true);
    const byDigest = await m.request(`/v2/team/app/manifests/${img.manifestDigest}`);
    expect(byDigest.status).toBe(200);
    expect(fake.calls.length).toBe(before);
  });

  it('sends a full Accept list upstream, the client types first', async () => {
    const INDEX = 'application/vnd.oci.image.index.v1+json';
    const LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
    const DOCKER = 'application/vnd.docker.distribution.manifest.v2+json';
    fake.add(makeImage('team/app', 'v1', [10], 1));
    fake.add(makeImage('team/app', 'v2', [10], 2));
    const byDigest = fake.add(makeImage('team/app', 'v3', [10], 3));
    /** The Accept headers the upstream received for this reference (cache misses only reach it). */
    const sentFor = (reference: string) => fake.calls.filter((c) => c.path.endsWith(`/manifests/${reference}`) && c.authorization).map((c) => c.accept);

    expect((await m.request('/v2/team/app/manifests/v1')).status).toBe(200);
    expect(sentFor('v1')).toEqual([[INDEX, OCI, LIST, DOCKER].join(', ')]);

    const v2 = await m.request('/v2/team/app/manifests/v2', { headers: { accept: `${DOCKER}, */*` } });
    expect(v2.status).toBe(200);
    expect(v2.headers.get('x-cache')).toBe('miss');
    expect(sentFor('v2')).toEqual([[DOCKER, INDEX, OCI, LIST].join(', ')]);

    const v3 = await m.request(`/v2/team/app/manifests/${byDigest.manifestDigest}`, { headers: { accept: `${OCI}, ${LIST}` } });
    expect(v3.status).toBe(200);
    expect(v3.headers.get('x-cache')).toBe('miss');
    expect(sentFor(byDigest.manifestDigest)).toEqual([[OCI, LIST, INDEX, DOCKER].join(', ')]);
  });

  it('HEAD of an uncached tag asks upstream with HEAD only and downloads no body', async () => {
    const img = fake.add(makeImage('team/app', 'v1', [10]));
    const res = await m.request('/v2/team/app/manifests/v1', { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('docker-content-digest')).toBe(img.manifestDigest);
    expect(res.headers.get('content-length')).toBe(String(img.manifest.length));
    expect(fake.count({ host: 'registry.test', method: 'GET', pathIncludes: '/manifests/' })).toBe(0);
    expect(fake.count({ host: 'registry.test', method: 'HEAD', pathIncludes: '/manifests/' })).toBeGreaterThan(0);
  });

  it('remembers a tag first resolved by HEAD once its manifest is fetched by digest (containerd), for use offline', async () => {
    const img = fake.add(makeImage('team/app', 'v1', [10]));
    expect((await m.request('/v2/team/app/manifests/v1', { method: 'HEAD' })).headers.get('docker-content-digest')).toBe(img.manifestDigest);
    clock += 2 * 60_000;
    expect((await m.request(`/v2/team/app/manifests/${img.manifestDigest}`)).status).toBe(200);
    const calls = fake.calls.length;
    fake.intercept = connectionRefused;
    const head = await m.request('/v2/team/app/manifests/v1', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('docker-content-digest')).toBe(img.manifestDigest);
    expect(head.headers.get('x-cache')).toBe('hit');
    expect(fake.calls.length).toBe(calls);
    // The tag counts as checked when the HEAD was answered: 6 minutes later it is past tag_ttl (5m), and with the
    // upstream unreachable the remembered tag is served stale.
    clock += 4 * 60_000;
    const stale = await m.request('/v2/team/app/manifests/v1');
    expect(stale.status).toBe(200);
    expect(stale.headers.get('x-cache')).toBe('stale');
    expect(Buffer.from(await stale.arrayBuffer()).equals(img.manifest)).toBe(true);
  });

  it('re-checks a tag with HEAD after tag_ttl and re-fetches only when the digest changed', async () => {
    const v1 = fake.add(makeImage('team/app', 'latest', [10], 1));
    await (await m.request('/v2/team/app/manifests/latest')).arrayBuffer();
    const gets = () => fake.count({ host: 'registry.test', method: 'GET', pathIncludes: '/manifests/', authorized: true });
    expect(gets()).toBe(1);

    clock += 6 * 60_000;
    const same = await m.request('/v2/team/app/manifests/latest');
    expect(res_digest(same)).toBe(v1.manifestDigest);
    expect(gets()).toBe(1);
    expect(fake.count({ host: 'registry.test', method: 'HEAD', pathIncludes: '/manifests/latest' })).toBe(1);

    fake.images.length = 0;
    const v2 = fake.add(makeImage('team/app', 'latest', [20], 2));
    clock += 6 * 60_000;
    const changed = await m.request('/v2/team/app/manifests/latest');
    expect(Buffer.from(await changed.arrayBuffer()).equals(v2.manifest)).toBe(true);
    expect(gets()).toBe(2);
  });

  it('serves a cached tag stale when the upstream is down, and 503 for an uncached one', async () => {
    const img = fake.add(makeImage('team/app', 'v1', [10]));
    await (await m.request('/v2/team/app/manifests/v1')).arrayBuffer();
    clock += 6 * 60_000;
    fake.intercept = connectionRefused;
    const stale = await m.request('/v2/team/app/manifests/v1');
    expect(stale.status).toBe(200);
    expect(stale.headers.get('x-cache')).toBe('stale');
    expect(Buffer.from(await stale.arrayBuffer()).equals(img.manifest)).toBe(true);

    const missing = await m.request('/v2/team/app/manifests/v2');
    expect(missing.status).toBe(503);
    const body = (await missing.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]!.code).toBe('UNAVAILABLE');
    expect(body.errors[0]!.message).toContain('upstream acr (registry.test)');
    expect(body.errors[0]!.message).toContain('connection refused');
  });

  it('refuses a manifest whose bytes do not match the requested digest and caches nothing', async () => {
    const img = fake.add(makeImage('team/app', 'v1', [10]));
    // Another valid manifest of the same length (one layer size changed), sent with headers that claim the
    // requested digest: only hashing the bytes can tell.
    const wrong = Buffer.from(img.manifest.toString().replace('"size":10}', '"size":11}'));
    expect(wrong.equals(img.manifest)).toBe(false);
    expect(wrong.length).toBe(img.manifest.length);
    fake.intercept = (call) =>
      call.host === 'registry.test' && call.path.includes(img.manifestDigest) && call.authorization
        ? new Response(new Uint8Array(wrong), {
            headers: { 'content-type': OCI, 'docker-content-digest': img.manifestDigest, 'content-length': String(wrong.length) },
          })
        : undefined;
    const res = await m.request(`/v2/team/app/manifests/${img.manifestDigest}`);
    expect(res.status).toBe(502);
    expect(((await res.json()) as { errors: { message: string }[] }).errors[0]!.message).toContain('does not match its digest');
    fake.intercept = null;
    const ok = await m.request(`/v2/team/app/manifests/${img.manifestDigest}`);
    expect(ok.headers.get('x-cache')).toBe('miss');
  });

  it('404 from upstream is MANIFEST_UNKNOWN', async () => {
    const res = await m.request('/v2/team/none/manifests/v1');
    expect(res.status).toBe(404);
    expect(((await res.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('MANIFEST_UNKNOWN');
  });
});

function res_digest(r: Response): string | null {
  return r.headers.get('docker-content-digest');
}

describe('blobs', () => {
  it('pulls a blob through once: follows the redirect without Authorization, then serves it from disk', async () => {
    const img = fake.add(makeImage('team/app', 'v1', [300_000]));
    const [digest, bytes] = [...img.blobs.entries()].find(([, b]) => b.length === 300_000)!;
    const res = await m.request(`/v2/team/app/blobs/${digest}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe('300000');
    expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
    const oss = fake.calls.filter((c) => c.host === 'oss.test');
    expect(oss).toHaveLength(1);
    expect(oss[0]!.authorization).toBeNull();
    expect(fake.calls.some((c) => c.host === 'registry.test' && c.path.includes('/blobs/') && c.authorization?.startsWith('Bearer '))).toBe(true);
    await eventually(() => expect(existsSync(blobFile(digest)), 'blob committed').toBe(true));

    const again = await m.request(`/v2/team/app/blobs/${digest}`);
    expect(again.headers.get('x-cache')).toBe('hit');
    expect(Buffer.from(await again.arrayBuffer()).equals(bytes)).toBe(true);
    expect(fake.calls.filter((c) => c.host === 'oss.test')).toHaveLength(1);
  });

  it('answers Range requests on cached blobs with 206 and 416', async () => {
    const img = fake.add(makeImage('team/app', 'v1', [1000]));
    const [digest, bytes] = [...img.blobs.entries()].find(([, b]) => b.length === 1000)!;
    await (await m.request(`/v2/team/app/blobs/${digest}`)).arrayBuffer();
    await eventually(() => expect(existsSync(blobFile(digest)), 'blob committed').toBe(true));
    const part = await m.request(`/v2/team/app/blobs/${digest}`, { headers: { range: 'bytes=100-199' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe('bytes 100-199/1000');
    expect(Buffer.from(await part.arrayBuffer()).equals(bytes.subarray(100, 200))).toBe(true);
    const suffix = await m.request(`/v2/team/app/blobs/${digest}`, { headers: { range: 'bytes=-10' } });
    expect(Buffer.from(await suffix.arrayBuffer()).equals(bytes.subarray(990))).toBe(true);
    const bad = await m.request(`/v2/team/app/blobs/${digest}`, { headers: { range: 'bytes=5000-' } });
    expect(bad.status).toBe(416);
    expect(bad.headers.get('content-range')).toBe('bytes */1000');
  });

  it('ten concurrent cold requests share one upstream download', async () => {
    const img = fake.add(makeImage('team/app', 'v1', [2_000_000]));
    const [digest, bytes] = [...img.blobs.entries()].find(([, b]) => b.length === 2_000_000)!;
    const bodies = await Promise.all(
      Array.from({ length: 10 }, async () => Buffer.from(await (await m.request(`/v2/team/app/blobs/${digest}`)).arrayBuffer())),
    );
    for (const b of bodies) expect(b.equals(bytes)).toBe(true);
    expect(fake.count({ host: 'oss.test' })).toBe(1);
  });

  it('keeps filling after the only client goes away, and commits the blob', async () => {
    const img = fake.add(makeImage('team/app', 'v1', [400_000]));
    const [digest, bytes] = [...img.blobs.entries()].find(([, b]) => b.length === 400_000)!;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    fake.ossBody = (_d, body) => {
      let step = 0;
      return new ReadableStream({
        async pull(controller) {
          if (step === 0) controller.enqueue(new Uint8Array(body.subarray(0, 100_000)));
          else if (step === 1) {
            await gate;
            controller.enqueue(new Uint8Array(body.subarray(100_000)));
          } else controller.close();
          step++;
        },
      });
    };
    const res = await m.request(`/v2/team/app/blobs/${digest}`);
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(first.done).toBe(false);
    await reader.cancel();
    expect(existsSync(blobFile(digest))).toBe(false);
    release();
    await eventually(() => expect(existsSync(blobFile(digest)), 'blob committed').toBe(true));
    const again = await m.request(`/v2/team/app/blobs/${digest}`);
    expect(again.headers.get('x-cache')).toBe('hit');
    expect(Buffer.from(await again.arrayBuffer()).equals(bytes)).toBe(true);
    expect(fake.count({ host: 'oss.test' })).toBe(1);
  });

  it('resumes a transfer that breaks mid-body with Range from the byte reached', async () => {
    const img = fake.add(makeImage('team/app', 'v1', [500_000]));
    const [digest, bytes] = [...img.blobs.entries()].find(([, b]) => b.length === 500_000)!;
    let first = true;
    fake.ossBody = (_d, body) => {
      if (!first) return body;
      first = false;
      return brokenStream(body.subarray(0, 123_456));
    };
    const res = await m.request(`/v2/team/app/blobs/${digest}`);
    expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
    const oss = fake.calls.filter((c) => c.host === 'oss.test');
    expect(oss).toHaveLength(2);
    expect(oss[1]!.range).toBe('bytes=123456-');
    // The resume reuses the signed link: the registry is not asked again.
    expect(fake.count({ host: 'registry.test', method: 'GET', pathIncludes: '/blobs/', authorized: true })).toBe(1);
    await eventually(() => expect(existsSync(blobFile(digest)), 'blob committed').toBe(true));
  });

  it('never caches or completes a blob whose bytes do not match its digest', async () => {
    const img = fake.add(makeImage('team/app', 'v1', [200_000]));
    const [digest] = [...img.blobs.entries()].find(([, b]) => b.length === 200_000)!;
    fake.ossBody = (_d, body) => {
      const copy = Buffer.from(body);
      copy[1000] = copy[1000]! ^ 0xff;
      return copy;
    };
    const res = await m.request(`/v2/team/app/blobs/${digest}`);
    expect(res.status).toBe(200);
    await expect(res.arrayBuffer()).rejects.toThrow();
    await m.mirror.fills.settled();
    await eventually(async () => expect(await readdir(join(m.dir, 'data', 'tmp'))).toEqual([]));
    expect(existsSync(blobFile(digest))).toBe(false);

    fake.ossBody = null;
    const retry = await m.request(`/v2/team/app/blobs/${digest}`);
    expect(retry.headers.get('x-cache')).toBe('miss');
    expect(sha256(Buffer.from(await retry.arrayBuffer()))).toBe(digest);
  });

  it('asks the registry again when object storage refuses an expired signed link', async () => {
    const img = fake.add(makeImage('team/app', 'v1', [1000]));
    const [digest, bytes] = [...img.blobs.entries()].find(([, b]) => b.length === 1000)!;
    let expired = true;
    fake.intercept = (call) => {
      if (call.host === 'oss.test' && expired) {
        expired = false;
        return new Response('<Error><Code>AccessDenied</Code><Message>Request has expired.</Message></Error>', { status: 403 });
      }
      return undefined;
    };
    const res = await m.request(`/v2/team/app/blobs/${digest}`);
    expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
    expect(fake.count({ host: 'registry.test', method: 'GET', pathIncludes: '/blobs/', authorized: true })).toBe(2);
  });

  it('unknown blob is BLOB_UNKNOWN', async () => {
    fake.add(makeImage('team/app', 'v1', [10]));
    const res = await m.request(`/v2/team/app/blobs/sha256:${'0'.repeat(64)}`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('BLOB_UNKNOWN');
  });
});

describe('upstream authentication and failures', () => {
  it('fetches one token per repository scope and reuses it for the whole pull', async () => {
    const img = fake.add(makeImage('team/app', 'v1', [100, 200, 300]));
    await (await m.request('/v2/team/app/manifests/v1')).arrayBuffer();
    for (const d of img.blobs.keys()) await (await m.request(`/v2/team/app/blobs/${d}`)).arrayBuffer();
    expect(fake.issued).toEqual(['tok-1-repository:team/app:pull']);
  });

  it('renews an expired token, and refreshes once when the registry refuses a cached one', async () => {
    fake.tokenLifetimeSec = 60;
    const img = fake.add(makeImage('team/app', 'v1', [10]));
    await (await m.request('/v2/team/app/manifests/v1')).arrayBuffer();
    clock += 61_000;
    await (await m.request(`/v2/team/app/manifests/${[...img.blobs.keys()][0]}`)).arrayBuffer();
    expect(fake.issued).toHaveLength(2);
    fake.revokeTokens();
    const res = await m.request(`/v2/team/app/blobs/${[...img.blobs.keys()][0]}`);
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    expect(fake.issued).toHaveLength(3);
  });

  it('wrong credentials give 502 naming the token service and user, never the password', async () => {
    fake.password = 'rotated';
    fake.add(makeImage('team/app', 'v1', [10]));
    const res = await m.request('/v2/team/app/manifests/v1');
    expect(res.status).toBe(502);
    const text = await res.text();
    expect(text).toContain('token service auth.test rejected the credentials of user mirror (401)');
    expect(text).not.toContain('mirror-secret');
  });

  it('honours Retry-After on 429 and fails fast when it is longer than retry_max_delay', async () => {
    fake.add(makeImage('team/app', 'v1', [10]));
    let left = 1;
    fake.intercept = (call) =>
      call.path.includes('/manifests/') && left-- > 0 ? new Response('slow down', { status: 429, headers: { 'retry-after': '2' } }) : undefined;
    const ok = await m.request('/v2/team/app/manifests/v1');
    expect(ok.status).toBe(200);
    expect(m.sleeps.some((s) => s >= 2000)).toBe(true);

    fake.intercept = (call) => (call.path.includes('/manifests/') ? new Response('no', { status: 429, headers: { 'retry-after': '3600' } }) : undefined);
    const sleepsBefore = m.sleeps.length;
    const limited = await m.request('/v2/team/app/manifests/v2');
    expect(limited.status).toBe(503);
    expect(limited.headers.get('retry-after')).toBe('3600');
    expect(m.sleeps.length).toBe(sleepsBefore);
  });

  it('retries 5xx and reports 502 when they persist', async () => {
    fake.add(makeImage('team/app', 'v1', [10]));
    let failures = 2;
    fake.intercept = (call) => (call.path.includes('/manifests/') && failures-- > 0 ? new Response('oops', { status: 500 }) : undefined);
    expect((await m.request('/v2/team/app/manifests/v1')).status).toBe(200);

    fake.intercept = (call) => (call.path.includes('/manifests/v2') ? new Response('oops', { status: 502 }) : undefined);
    const res = await m.request('/v2/team/app/manifests/v2');
    expect(res.status).toBe(502);
    expect(fake.count({ pathIncludes: '/manifests/v2' })).toBe(4);
    expect(await res.text()).toContain('failed with 502');
  });

  it('caps redirect hops', async () => {
    const img = fake.add(makeImage('team/app', 'v1', [10]));
    fake.intercept = (call) =>
      call.host === 'oss.test' ? new Response(null, { status: 302, headers: { location: 'https://oss.test/loop?Signature=sig' } }) : undefined;
    const res = await m.request(`/v2/team/app/blobs/${[...img.blobs.keys()][1]}`);
    expect(res.status).toBe(502);
    expect(await res.text()).toContain('redirected more than 5 times');
  });
});

describe('read-only API surface', () => {
  it.each(['PUT', 'POST', 'PATCH', 'DELETE'])('%s answers 405 UNSUPPORTED', async (method) => {
    const res = await m.request('/v2/team/app/manifests/v1', { method });
    expect(res.status).toBe(405);
    expect(((await res.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('UNSUPPORTED');
    expect(fake.calls).toHaveLength(0);
  });

  it('rejects malformed names and digests before any upstream request', async () => {
    for (const path of ['/v2/Team/app/manifests/v1', '/v2/a%2F..%2Fb/manifests/v1', `/v2/${'a'.repeat(300)}/manifests/v1`]) {
      const res = await m.request(path);
      expect(res.status, path).toBe(400);
    }
    expect((await m.request('/v2/team/app/blobs/sha256:1234')).status).toBe(400);
    // a reference that can name no manifest is an unknown manifest (distribution-spec conformance)
    expect((await m.request('/v2/team/app/manifests/bad!tag')).status).toBe(404);
    expect(fake.calls).toHaveLength(0);
  });

  it.each([
    ['sends every tag', false],
    ['pages itself', true],
  ])('lists tags with n/last pagination and a Link header (upstream %s)', async (_name, paginatesTags) => {
    fake.paginatesTags = paginatesTags;
    for (const t of ['a', 'b', 'c', 'd', 'e']) fake.add(makeImage('team/app', t, [10], t.charCodeAt(0)));
    const pages: string[][] = [];
    let next: string | null = '/v2/team/app/tags/list?n=2';
    const links: (string | null)[] = [];
    while (next !== null && pages.length < 5) {
      const res = await m.request(next);
      expect(res.status, next).toBe(200);
      const body = (await res.json()) as { name: string; tags: string[] };
      expect(body.name).toBe('team/app');
      pages.push(body.tags);
      const link = res.headers.get('link');
      links.push(link);
      next = link === null ? null : /^<([^>]+)>; rel="next"$/.exec(link)![1]!;
    }
    expect(pages).toEqual([['a', 'b'], ['c', 'd'], ['e']]);
    expect(links).toEqual(['</v2/team/app/tags/list?n=2&last=b>; rel="next"', '</v2/team/app/tags/list?n=2&last=d>; rel="next"', null]);
    const asked = fake.calls.filter((c) => c.path.includes('/tags/list') && c.authorization).map((c) => c.path);
    expect(asked).toEqual(['/v2/team/app/tags/list?n=2', '/v2/team/app/tags/list?n=2&last=b', '/v2/team/app/tags/list?n=2&last=d']);

    const whole = await m.request('/v2/team/app/tags/list');
    expect(await whole.json()).toEqual({ name: 'team/app', tags: ['a', 'b', 'c', 'd', 'e'] });
    expect(whole.headers.get('link')).toBeNull();
    const exact = await m.request('/v2/team/app/tags/list?n=1&last=d');
    expect(await exact.json()).toEqual({ name: 'team/app', tags: ['e'] });
    expect(exact.headers.get('link')).toBeNull();
  });
});
