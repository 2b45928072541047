// The admin side's pure parts: image references, platforms, the concurrency limiter, the [admin] configuration.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseImageRef } from '../../src/oci/image-ref.js';
import { Limiter } from '../../src/admin/limiter.js';
import { parsePlatform, platformMatches } from '../../src/oci/platform.js';
import { parseConfig } from '../../src/config/load.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('parseImageRef', () => {
  it.each([
    ['team/app:1.2', { name: 'team/app', reference: { kind: 'tag', tag: '1.2' } }],
    ['team/app', { name: 'team/app', reference: { kind: 'tag', tag: 'latest' } }],
    [`library/nginx@${DIGEST}`, { name: 'library/nginx', reference: { kind: 'digest', digest: DIGEST } }],
    [`library/nginx:1.25@${DIGEST}`, { name: 'library/nginx', reference: { kind: 'digest', digest: DIGEST } }],
    ['registry.cn-hangzhou.aliyuncs.com/ns/app:v1', { name: 'registry.cn-hangzhou.aliyuncs.com/ns/app', reference: { kind: 'tag', tag: 'v1' } }],
    ['  team/app:v1  ', { name: 'team/app', reference: { kind: 'tag', tag: 'v1' } }],
  ])('%s', (value, expected) => {
    expect(parseImageRef(value)).toEqual(expected);
  });

  it.each([
    ['Team/App:1', /invalid repository name/],
    ['team/app:', /invalid tag/],
    ['team/app@sha256:abc', /unsupported digest algorithm or length/],
    ['team/app@latest', /malformed digest/],
    ['', /invalid repository name/],
    ['127.0.0.1:5000/team/app:1', /invalid repository name/],
  ])('refuses %j', (value, message) => {
    expect(() => parseImageRef(value)).toThrow(message);
  });
});

describe('platforms', () => {
  it('parses os/architecture[/variant]', () => {
    expect(parsePlatform('linux/amd64')).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(parsePlatform('Linux/ARM/v7')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    for (const bad of ['linux', 'linux/', '/amd64', 'linux/amd64/v8/x', 'all']) expect(parsePlatform(bad), bad).toBeNull();
  });

  it.each([
    ['linux/amd64', { os: 'linux', architecture: 'amd64' }, true],
    ['linux/amd64', { os: 'windows', architecture: 'amd64' }, false],
    ['linux/arm', { os: 'linux', architecture: 'arm', variant: 'v7' }, true],
    ['linux/arm/v7', { os: 'linux', architecture: 'arm', variant: 'v6' }, false],
    ['linux/arm64/v8', { os: 'linux', architecture: 'arm64' }, true],
    ['linux/arm64/v8', { os: 'linux', architecture: 'arm64', variant: 'v8' }, true],
  ])('%s matches %j: %s', (wanted, entry, expected) => {
    expect(platformMatches(parsePlatform(wanted)!, entry)).toBe(expected);
  });
});

describe('Limiter', () => {
  it('runs at most `limit` tasks at once, in order, and lets waiting tasks give up', async () => {
    const limiter = new Limiter(2);
    let running = 0;
    let peak = 0;
    const order: number[] = [];
    const task = (i: number) => async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 5));
      order.push(i);
      running--;
    };
    const aborted = new AbortController();
    const given = limiter.run(task(99), aborted.signal);
    const runs = [1, 2, 3, 4, 5].map((i) => limiter.run(task(i)));
    aborted.abort(new Error('stop'));
    await expect(given).resolves.toBeUndefined(); // had a slot already
    const waiting = new AbortController();
    const late = limiter.run(task(100), waiting.signal);
    waiting.abort(new Error('gave up'));
    await expect(late).rejects.toThrow('gave up');
    await Promise.all(runs);
    expect(peak).toBe(2);
    expect(order).toEqual([99, 1, 2, 3, 4, 5]);
  });
});

describe('[admin] configuration', () => {
  const parse = (admin: Record<string, unknown>, env: Record<string, string> = {}, baseDir = '/tmp') =>
    parseConfig({ admin }, { env, baseDir, source: 'test' }).admin;

  it('takes the token from ACR_MIRROR_ADMIN_TOKEN by default, and is off without one', () => {
    expect(parse({}).token).toBeNull();
    const on = parse({}, { ACR_MIRROR_ADMIN_TOKEN: 'a-long-enough-admin-token' });
    expect(on.token!.reveal()).toBe('a-long-enough-admin-token');
    expect(String(on.token)).toBe('[redacted]');
    expect(on.warm_concurrency).toBe(4);
  });

  it('takes the token from a named variable or a file', async () => {
    expect(parse({ token_env: 'MY_TOKEN', warm_concurrency: 8 }, { MY_TOKEN: 'another-long-admin-token' })).toMatchObject({
      tokenSource: 'environment variable MY_TOKEN',
      warm_concurrency: 8,
    });
    const dir = await mkdtemp(join(tmpdir(), 'acr-admin-config-'));
    try {
      await writeFile(join(dir, 'token'), 'token-from-a-file-0123\n');
      expect(parse({ token_file: 'token' }, {}, dir).token!.reveal()).toBe('token-from-a-file-0123');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it.each([
    [{ token_env: 'MISSING' }, {}, 'admin.token_env: environment variable MISSING is not set'],
    [{}, { ACR_MIRROR_ADMIN_TOKEN: 'short' }, 'admin.token_env: the admin token must be at least 16 characters'],
    [{ token_file: '/nonexistent/token' }, {}, 'admin.token_file: cannot read /nonexistent/token: ENOENT'],
    [{ token_env: 'A', token_file: 'b' }, {}, 'admin.token_file: set either token_env or token_file, not both'],
    [{ warm_concurrency: 0 }, {}, 'admin.warm_concurrency: must be at least 1 (got 0, a number)'],
    [{ token: 'x' }, {}, 'admin.token: unknown key'],
    [{ allow: ['10.0.0.0/33'] }, {}, 'admin.allow[0]: must be an address or CIDR'],
  ])('refuses %j', (admin, env, message) => {
    expect(() => parse(admin, env as Record<string, string>)).toThrow(message);
  });

  it.each([
    ['aaaaaaaaaaaaaaaaaaaaaaaa', 'one character repeated'],
    ['abcabcabcabcabcabcabc', 'a short pattern repeated'],
    ['passwordpassword', 'a short pattern repeated'],
    ['admin-password-2024', 'common words and digits'],
    ['ChangeMe!Secret#Token1', 'common words and digits'],
    ['1111122222333334444', 'too few different characters'],
  ])('refuses the guessable admin token %s at start-up', (token, why) => {
    expect(() => parse({}, { ACR_MIRROR_ADMIN_TOKEN: token })).toThrow(`admin.token_env: the admin token is too easy to guess (${why}): use e.g. openssl rand -hex 32`);
  });

  it.each(['a-long-enough-admin-token', 'unit-test-admin-token-0123456789', 'an-admin-token-for-the-test', 'f3a9c07be1d24856a0c9e7d3b15f6a20'])('accepts the admin token %s', (token) => {
    expect(parse({}, { ACR_MIRROR_ADMIN_TOKEN: token }).token!.reveal()).toBe(token);
  });

  it('admin.allow defaults to loopback plus the access.allow networks', () => {
    const config = (doc: Record<string, unknown>) => parseConfig(doc, { env: {}, baseDir: '/tmp', source: 'test' }).admin.allow;
    expect(config({})).toEqual(['127.0.0.0/8', '::1/128']);
    expect(config({ access: { allow: ['10.0.0.0/8'] } })).toEqual(['127.0.0.0/8', '::1/128', '10.0.0.0/8']);
    expect(config({ access: { allow: ['10.0.0.0/8'] }, admin: { allow: ['192.168.1.7'] } })).toEqual(['192.168.1.7']);
  });
});
