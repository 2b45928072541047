import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig, type Config } from '../../src/config/load.js';
import { Secret } from '../../src/config/secret.js';
import { parseDuration, parseSize } from '../../src/config/units.js';

const REPO_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const BASE = '/srv/mirror';
const URL_ = 'https://registry.cn-hangzhou.aliyuncs.com';

function parse(raw: unknown, env: NodeJS.ProcessEnv = {}, baseDir = BASE): Config {
  return parseConfig(raw, { env, baseDir, source: 'test.toml' });
}

/** Asserts that parsing fails with a ConfigError and returns its message. */
function configError(fn: () => unknown): string {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, 'expected a ConfigError').toBeInstanceOf(ConfigError);
  return (caught as ConfigError).message;
}

const parseError = (raw: unknown, env: NodeJS.ProcessEnv = {}, baseDir = BASE) => configError(() => parse(raw, env, baseDir));

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'acr-mirror-config-'));
});
afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('parseConfig defaults', () => {
  it('fills every default for an empty document', () => {
    const c = parse({});
    expect(c.server).toEqual({ listen: '127.0.0.1:5000', shutdown_timeout: 30_000, max_connections: 1024, headers_timeout: 30_000, request_timeout: 3_600_000 });
    expect(c.storage).toEqual({ backend: 'fs', dir: join(BASE, 'data'), gc_interval: 3_600_000, gc_grace: 86_400_000 });
    expect(c.cache).toEqual({ tag_ttl: 300_000, not_found_ttl: 30_000, offline: false, max_fills: 64, max_fills_per_client: 16, orphan_fill_grace: 30_000, prefetch: true, prefetch_concurrency: 3 });
    expect(c.log).toEqual({ level: 'info' });
    expect(c.routes).toEqual([{ prefix: '', upstream: 'acr' }]);
    expect(c.source).toBe('test.toml');
    expect(Object.keys(c.upstreams)).toEqual(['acr']);
    expect(c.upstreams.acr).toEqual({
      name: 'acr',
      url: URL_,
      aliases: [],
      token_realms: ['dockerauth.*.aliyuncs.com', 'dockerauth-vpc.*.aliyuncs.com', 'dockerauth-ee.*.aliyuncs.com', 'dockerauth-ee-vpc.*.aliyuncs.com'],
      insecure: false,
      hosts: {},
      offline: false,
      breaker_threshold: 5,
      breaker_cooldown: 10_000,
      breaker_max_cooldown: 300_000,
      connect_timeout: 10_000,
      response_timeout: 30_000,
      idle_timeout: 30_000,
      fill_timeout: 1_800_000,
      retries: 3,
      retry_max_delay: 30_000,
      max_redirects: 5,
      fill_connections: 4,
      fill_segment_size: 8 * 1024 * 1024,
      storage_connections: 32,
      token_margin: 30_000,
    });
    expect(c.upstreams.acr!.credentials).toBeUndefined();
  });

  it('fills defaults inside a user-defined upstream', () => {
    const c = parse({ upstreams: { acr: { url: 'https://r.example/', retries: 0, connect_timeout: '500ms' } } });
    expect(c.upstreams.acr).toMatchObject({ url: 'https://r.example', retries: 0, connect_timeout: 500, response_timeout: 30_000, max_redirects: 5 });
  });

  it('strips trailing slashes from upstream URLs', () => {
    expect(parse({ upstreams: { acr: { url: 'https://r.example///' } } }).upstreams.acr!.url).toBe('https://r.example');
    expect(parse({ upstreams: { acr: { url: 'http://127.0.0.1:5001/', insecure: true } } }).upstreams.acr!.url).toBe('http://127.0.0.1:5001');
  });

  it('refuses plain http:// unless the upstream is marked insecure', () => {
    expect(parseError({ upstreams: { acr: { url: 'http://127.0.0.1:5001' } } })).toContain('upstreams.acr.url: plain http:// needs insecure = true');
  });

  it('token_realms takes host names with "*" standing for one label, and replaces the defaults', () => {
    const realms = ['auth.example.com', 'dockerauth.*.aliyuncs.com'];
    expect(parse({ upstreams: { acr: { url: URL_, token_realms: realms } } }).upstreams.acr!.token_realms).toEqual(realms);
    expect(parseError({ upstreams: { acr: { url: URL_, token_realms: ['https://auth.example.com/token'] } } })).toContain('upstreams.acr.token_realms[0]: must be a host name');
    expect(parseError({ upstreams: { acr: { url: URL_, token_realms: ['*'] } } })).toContain('upstreams.acr.token_realms[0]: must be a host name');
  });

  it('accepts routes with rewrites to configured upstreams', () => {
    const c = parse({
      upstreams: { acr: { url: URL_ }, hub: { url: 'https://hub.example' } },
      routes: [
        { prefix: '', upstream: 'acr' },
        { prefix: 'library', upstream: 'hub', rewrite: 'hub-mirror' },
        { prefix: 'team/app', upstream: 'acr', rewrite: '' },
      ],
    });
    expect(c.routes).toEqual([
      { prefix: '', upstream: 'acr' },
      { prefix: 'library', upstream: 'hub', rewrite: 'hub-mirror' },
      { prefix: 'team/app', upstream: 'acr', rewrite: '' },
    ]);
    expect(Object.keys(c.upstreams).sort()).toEqual(['acr', 'hub']);
    expect(c.upstreams.hub!.name).toBe('hub');
  });
});

describe('the committed config.toml', () => {
  it('loads, validates, and matches the built-in defaults', () => {
    const c = loadConfig({ path: join(REPO_ROOT, 'config.toml'), env: {}, cwd: tmp });
    expect(c.source).toBe(join(REPO_ROOT, 'config.toml'));
    expect(c.storage.dir).toBe(join(REPO_ROOT, 'data'));
    // Its header promises "the values below are the defaults unless marked example".
    const defaults = parseConfig({}, { env: {}, baseDir: REPO_ROOT, source: 'defaults' });
    expect({ ...c, source: '' }).toEqual({ ...defaults, source: '' });
  });
});

describe('loadConfig', () => {
  it('resolves a relative path against cwd and storage.dir against the file', () => {
    mkdirSync(join(tmp, 'etc'));
    writeFileSync(join(tmp, 'etc', 'mirror.toml'), '[storage]\ndir = "cache"\n[server]\nlisten = "0.0.0.0:5001"\n');
    const c = loadConfig({ path: 'etc/mirror.toml', env: {}, cwd: tmp });
    expect(c.source).toBe(join(tmp, 'etc', 'mirror.toml'));
    expect(c.storage.dir).toBe(join(tmp, 'etc', 'cache'));
    expect(c.server.listen).toBe('0.0.0.0:5001');
  });

  it('keeps an absolute storage.dir', () => {
    writeFileSync(join(tmp, 'config.toml'), '[storage]\ndir = "/var/lib/acr-mirror"\n');
    expect(loadConfig({ env: {}, cwd: tmp }).storage.dir).toBe('/var/lib/acr-mirror');
  });

  it('uses ACR_MIRROR_CONFIG when no path is given', () => {
    writeFileSync(join(tmp, 'other.toml'), '[log]\nlevel = "debug"\n');
    writeFileSync(join(tmp, 'config.toml'), '[log]\nlevel = "warn"\n');
    expect(loadConfig({ env: { ACR_MIRROR_CONFIG: 'other.toml' }, cwd: tmp }).log.level).toBe('debug');
  });

  it('prefers an explicit path over ACR_MIRROR_CONFIG', () => {
    writeFileSync(join(tmp, 'a.toml'), '[log]\nlevel = "error"\n');
    expect(loadConfig({ path: 'a.toml', env: { ACR_MIRROR_CONFIG: 'missing.toml' }, cwd: tmp }).log.level).toBe('error');
  });

  it('reads ./config.toml from cwd when present', () => {
    writeFileSync(join(tmp, 'config.toml'), '[log]\nlevel = "warn"\n');
    const c = loadConfig({ env: {}, cwd: tmp });
    expect(c.log.level).toBe('warn');
    expect(c.source).toBe(join(tmp, 'config.toml'));
  });

  it('falls back to built-in defaults when there is no config file', () => {
    const c = loadConfig({ env: {}, cwd: tmp });
    expect(c.source).toBe('built-in defaults');
    expect(c.storage.dir).toBe(join(tmp, 'data'));
    expect(c.upstreams.acr!.url).toBe(URL_);
  });

  it('fails when an explicitly named file does not exist', () => {
    const msg = configError(() => loadConfig({ path: 'nope.toml', env: {}, cwd: tmp }));
    expect(msg).toContain(join(tmp, 'nope.toml'));
    expect(msg).toMatch(/not found/);
  });

  it('fails when ACR_MIRROR_CONFIG names a missing file', () => {
    const msg = configError(() => loadConfig({ env: { ACR_MIRROR_CONFIG: 'gone.toml' }, cwd: tmp }));
    expect(msg).toContain(join(tmp, 'gone.toml'));
  });

  it.each([
    ['unterminated string', '[server]\nlisten = "127.0.0.1:5000\n'],
    ['missing value', '[server]\nlisten =\n'],
    ['duplicate key', '[server]\nlisten = "a:1"\nlisten = "b:2"\n'],
    ['bad table header', '[server\n'],
  ])('rejects invalid TOML (%s) with a ConfigError naming the file', (_label, text) => {
    writeFileSync(join(tmp, 'config.toml'), text);
    const msg = configError(() => loadConfig({ env: {}, cwd: tmp }));
    expect(msg).toContain(join(tmp, 'config.toml'));
    expect(msg).toMatch(/TOML/);
  });

  it('reports schema errors with the file as source', () => {
    writeFileSync(join(tmp, 'config.toml'), '[upstreams.acr]\nurl = "https://r.example"\nconect_timeout = "5s"\n');
    const msg = configError(() => loadConfig({ env: {}, cwd: tmp }));
    expect(msg).toContain(join(tmp, 'config.toml'));
    expect(msg).toContain('upstreams.acr.conect_timeout: unknown key');
  });

  it('resolves password_file relative to the config file, not cwd', () => {
    mkdirSync(join(tmp, 'conf'));
    mkdirSync(join(tmp, 'conf', 'secrets'));
    writeFileSync(join(tmp, 'conf', 'secrets', 'pw'), 'from-conf-dir\n');
    writeFileSync(
      join(tmp, 'conf', 'config.toml'),
      '[upstreams.acr]\nurl = "https://r.example"\nusername = "u"\npassword_file = "secrets/pw"\n',
    );
    const c = loadConfig({ path: 'conf/config.toml', env: {}, cwd: tmp });
    expect(c.upstreams.acr!.credentials!.password.reveal()).toBe('from-conf-dir');
  });
});

describe('unknown keys', () => {
  it('at the top level', () => {
    expect(parseError({ sever: { listen: '127.0.0.1:1' } })).toContain('sever: unknown key');
  });

  it('in [server]', () => {
    expect(parseError({ server: { lisen: '127.0.0.1:1' } })).toContain('server.lisen: unknown key');
  });

  it.each(['storage', 'cache', 'log'])('in [%s]', (section) => {
    expect(parseError({ [section]: { bogus: 1 } })).toContain(`${section}.bogus: unknown key`);
  });

  it('in [upstreams.x]', () => {
    expect(parseError({ upstreams: { acr: { url: URL_, conect_timeout: '5s' } } })).toContain('upstreams.acr.conect_timeout: unknown key');
  });

  it('in [[routes]]', () => {
    const msg = parseError({
      upstreams: { acr: { url: URL_ } },
      routes: [
        { prefix: '', upstream: 'acr' },
        { prefix: 'x', upstream: 'acr', rewrite_to: 'y' },
      ],
    });
    expect(msg).toContain('routes[1].rewrite_to: unknown key');
  });

  it('every unknown key is named', () => {
    const msg = parseError({ server: { a: 1, b: 2 } });
    expect(msg).toContain('server.a: unknown key');
    expect(msg).toContain('server.b: unknown key');
  });
});

describe('routes', () => {
  it('names a route whose upstream does not exist', () => {
    const msg = parseError({ upstreams: { acr: { url: URL_ } }, routes: [{ prefix: '', upstream: 'acrr' }] });
    expect(msg).toMatch(/routes\[0\]\.upstream: no upstream named "acrr"/);
    expect(msg).toContain('acr');
  });

  it('names a duplicate prefix', () => {
    const msg = parseError({
      upstreams: { acr: { url: URL_ } },
      routes: [
        { prefix: 'a', upstream: 'acr' },
        { prefix: 'a', upstream: 'acr' },
      ],
    });
    expect(msg).toMatch(/routes\[1\]\.prefix: duplicate route prefix "a"/);
  });

  it.each([['/a'], ['a/'], ['A'], ['a//b'], ['../x']])('rejects prefix %j', (prefix) => {
    expect(parseError({ upstreams: { acr: { url: URL_ } }, routes: [{ prefix, upstream: 'acr' }] })).toContain('routes[0].prefix:');
  });

  it('rejects an invalid rewrite', () => {
    expect(parseError({ upstreams: { acr: { url: URL_ } }, routes: [{ prefix: 'a', upstream: 'acr', rewrite: 'Bad/' }] })).toContain(
      'routes[0].rewrite:',
    );
  });

  it('rejects a route without an upstream', () => {
    expect(parseError({ upstreams: { acr: { url: URL_ } }, routes: [{ prefix: '' }] })).toContain('routes[0].upstream:');
  });

  it('routes every name to the only upstream when no [[routes]] are given', () => {
    expect(parse({ upstreams: { main: { url: URL_ } } }).routes).toEqual([{ prefix: '', upstream: 'main' }]);
  });

  it('asks for [[routes]] when several upstreams are configured without them', () => {
    expect(parseError({ upstreams: { a: { url: URL_ }, b: { url: URL_ } } })).toMatch(/routes: several upstreams are configured/);
  });

  it('rejects an empty upstreams table', () => {
    expect(parseError({ upstreams: {} })).toMatch(/upstreams: configure at least one upstream/);
  });

  it('rejects an invalid upstream name', () => {
    expect(parseError({ upstreams: { 'bad name': { url: URL_ } }, routes: [{ prefix: '', upstream: 'bad name' }] })).toMatch(
      /upstreams\.bad name: upstream names use/,
    );
  });
});

describe('bad values name their key', () => {
  it.each([
    ['server.shutdown_timeout', { server: { shutdown_timeout: '30 sec' } }],
    ['cache.tag_ttl', { cache: { tag_ttl: '5' } }],
    ['cache.tag_ttl', { cache: { tag_ttl: 300 } }],
    ['cache.orphan_fill_grace', { cache: { orphan_fill_grace: '30' } }],
    ['upstreams.acr.connect_timeout', { upstreams: { acr: { url: URL_, connect_timeout: '-1s' } } }],
    ['upstreams.acr.fill_timeout', { upstreams: { acr: { url: URL_, fill_timeout: '1w' } } }],
    ['upstreams.acr.token_margin', { upstreams: { acr: { url: URL_, token_margin: '' } } }],
  ])('duration %s', (key, raw) => {
    expect(parseError(raw)).toContain(`${key}:`);
  });

  it.each([
    ['cache.max_fills', { cache: { max_fills: 0 } }],
    ['cache.max_fills', { cache: { max_fills: 1.5 } }],
    ['cache.max_fills_per_client', { cache: { max_fills_per_client: '16' } }],
  ])('fill limit %s', (key, raw) => {
    expect(parseError(raw)).toContain(`${key}:`);
  });

  it.each([
    ['cache.prefetch', { cache: { prefetch: 'yes' } }],
    ['cache.prefetch_concurrency', { cache: { prefetch_concurrency: 0 } }],
  ])('prefetch setting %s', (key, raw) => {
    expect(parseError(raw)).toContain(`${key}:`);
  });

  it('mentions the accepted duration syntax', () => {
    expect(parseError({ cache: { tag_ttl: '5 minutes' } })).toMatch(/cache\.tag_ttl: invalid duration "5 minutes"/);
  });

  it.each([['localhost'], [':5000'], ['127.0.0.1'], ['127.0.0.1:'], ['127.0.0.1:abc'], ['http://127.0.0.1:5000'], ['::1:5000'], ['127.0.0.1:123456']])(
    'listen %j',
    (listen) => {
      expect(parseError({ server: { listen } })).toContain('server.listen:');
    },
  );

  it.each([['127.0.0.1:70000'], ['0.0.0.0:65536'], ['[::1]:99999']])('listen %j (port out of range)', (listen) => {
    expect(parseError({ server: { listen } })).toContain('server.listen:');
  });

  it.each([['127.0.0.1:5000'], ['0.0.0.0:80'], ['localhost:65535'], ['[::]:5000'], ['[::1]:5000'], ['mirror.internal:443']])(
    'accepts listen %j',
    (listen) => {
      expect(parse({ server: { listen } }).server.listen).toBe(listen);
    },
  );

  it.each([['registry.cn-hangzhou.aliyuncs.com'], ['ftp://registry.example'], ['not a url'], ['']])('url %j', (url) => {
    expect(parseError({ upstreams: { acr: { url } } })).toContain('upstreams.acr.url:');
  });

  it('missing url', () => {
    expect(parseError({ upstreams: { acr: {} } })).toContain('upstreams.acr.url:');
  });

  it.each([
    ['retries', -1],
    ['retries', 11],
    ['retries', 1.5],
    ['retries', '3'],
    ['max_redirects', 0],
    ['max_redirects', 11],
    ['fill_connections', 0],
    ['fill_connections', 33],
    ['fill_segment_size', '1KiB'],
    ['fill_segment_size', 'lots'],
    ['storage_connections', 0],
  ])('%s = %j', (key, value) => {
    expect(parseError({ upstreams: { acr: { url: URL_, [key]: value } } })).toContain(`upstreams.acr.${key}:`);
  });

  it('log level', () => {
    expect(parseError({ log: { level: 'verbose' } })).toContain('log.level:');
  });

  it('a section of the wrong type', () => {
    expect(parseError({ server: 'x' })).toContain('server:');
    expect(parseError({ routes: { prefix: '' } })).toContain('routes:');
  });

  it('a document that is not a table', () => {
    expect(configError(() => parse(null))).toContain('test.toml');
  });
});

describe('credentials', () => {
  it('rejects a password in the file, pointing to password_env / password_file', () => {
    const msg = parseError({ upstreams: { acr: { url: URL_, username: 'u', password: 'hunter2' } } });
    expect(msg).toContain('upstreams.acr.password:');
    expect(msg).toContain('password_env');
    expect(msg).toContain('password_file');
    expect(msg).not.toContain('hunter2');
  });

  it('reads the password from password_env', () => {
    const c = parse({ upstreams: { acr: { url: URL_, username: 'u@example.com', password_env: 'ACR_PW' } } }, { ACR_PW: 's3cr3t' });
    const creds = c.upstreams.acr!.credentials!;
    expect(creds.username).toBe('u@example.com');
    expect(creds.password).toBeInstanceOf(Secret);
    expect(creds.password.reveal()).toBe('s3cr3t');
    expect(c.upstreams.acr).not.toHaveProperty('password_env');
    expect(c.upstreams.acr).not.toHaveProperty('username');
  });

  it.each([['unset', {}], ['empty', { ACR_PW: '' }]])('names the key and variable when password_env is %s', (_label, env) => {
    const msg = parseError({ upstreams: { acr: { url: URL_, username: 'u', password_env: 'ACR_PW' } } }, env);
    expect(msg).toMatch(/upstreams\.acr\.password_env: .*ACR_PW/);
  });

  it('rejects a password_env that is not a variable name', () => {
    expect(parseError({ upstreams: { acr: { url: URL_, username: 'u', password_env: '$ACR_PW' } } })).toContain('upstreams.acr.password_env:');
  });

  it('reads and trims the password from password_file (absolute path)', () => {
    const file = join(tmp, 'pw');
    writeFileSync(file, '  file-secret \n');
    const c = parse({ upstreams: { acr: { url: URL_, username: 'u', password_file: file } } });
    expect(c.upstreams.acr!.credentials!.password.reveal()).toBe('file-secret');
    expect(c.upstreams.acr).not.toHaveProperty('password_file');
  });

  it('resolves a relative password_file against baseDir', () => {
    mkdirSync(join(tmp, 'secrets'));
    writeFileSync(join(tmp, 'secrets', 'acr'), 'relative-secret\n');
    const c = parse({ upstreams: { acr: { url: URL_, username: 'u', password_file: 'secrets/acr' } } }, {}, tmp);
    expect(c.upstreams.acr!.credentials!.password.reveal()).toBe('relative-secret');
  });

  it('names the key and the file when password_file is missing', () => {
    const msg = parseError({ upstreams: { acr: { url: URL_, username: 'u', password_file: 'nope' } } }, {}, tmp);
    expect(msg).toContain('upstreams.acr.password_file:');
    expect(msg).toContain(join(tmp, 'nope'));
    expect(msg).toContain('ENOENT');
  });

  it('rejects an empty password_file', () => {
    writeFileSync(join(tmp, 'empty'), '\n\n');
    expect(parseError({ upstreams: { acr: { url: URL_, username: 'u', password_file: 'empty' } } }, {}, tmp)).toMatch(
      /upstreams\.acr\.password_file: .*empty/,
    );
  });

  it('rejects both password_env and password_file', () => {
    writeFileSync(join(tmp, 'pw'), 'x');
    const msg = parseError({ upstreams: { acr: { url: URL_, username: 'u', password_env: 'ACR_PW', password_file: 'pw' } } }, { ACR_PW: 'y' }, tmp);
    expect(msg).toMatch(/upstreams\.acr\.password_(env|file): .*not both/);
  });

  it('rejects a username without a password', () => {
    expect(parseError({ upstreams: { acr: { url: URL_, username: 'u' } } })).toMatch(/upstreams\.acr\.password_env: .*username/);
  });

  it('rejects a password without a username', () => {
    expect(parseError({ upstreams: { acr: { url: URL_, password_env: 'ACR_PW' } } }, { ACR_PW: 'x' })).toContain('upstreams.acr.username:');
  });

  it('rejects an empty username', () => {
    expect(parseError({ upstreams: { acr: { url: URL_, username: '', password_env: 'ACR_PW' } } }, { ACR_PW: 'x' })).toContain(
      'upstreams.acr.username:',
    );
  });
});

describe('Secret', () => {
  const config = () => parse({ upstreams: { acr: { url: URL_, username: 'u', password_env: 'ACR_PW' } } }, { ACR_PW: 'p4ss-w0rd' });

  it('prints as [redacted] in JSON, String() and util.inspect, also inside the whole config', () => {
    const c = config();
    const pw = c.upstreams.acr!.credentials!.password;
    expect(JSON.stringify(pw)).toBe('"[redacted]"');
    expect(String(pw)).toBe('[redacted]');
    expect(`${pw}`).toBe('[redacted]');
    expect(inspect(pw)).toBe('[redacted]');
    for (const text of [JSON.stringify(c), inspect(c, { depth: Infinity }), inspect(c, { depth: Infinity, showHidden: true })]) {
      expect(text).not.toContain('p4ss-w0rd');
    }
    expect(JSON.stringify(c)).toContain('[redacted]');
  });

  it('reveal() returns the value', () => {
    expect(config().upstreams.acr!.credentials!.password.reveal()).toBe('p4ss-w0rd');
  });

  it('does not expose the value through enumerable properties', () => {
    const s = new Secret('v4lue');
    expect(Object.values(s)).not.toContain('v4lue');
    expect({ ...s }).toEqual({});
    expect(Object.getOwnPropertyNames(s)).toEqual([]);
  });
});

describe('multiple errors', () => {
  it('reports all schema errors in one ConfigError', () => {
    const msg = parseError({
      bogus: true,
      server: { listen: 'nowhere', lisen: 'x' },
      upstreams: { acr: { url: 'ftp://x', connect_timeout: 'soon', password: 'p' } },
      log: { level: 'loud' },
    });
    for (const key of ['bogus: unknown key', 'server.listen:', 'server.lisen: unknown key', 'upstreams.acr.url:', 'upstreams.acr.connect_timeout:', 'upstreams.acr.password:', 'log.level:']) {
      expect(msg).toContain(key);
    }
    // Exactly these keys, nothing else (a key may carry more than one message).
    const keys = new Set(msg.split('\n').filter((l) => l.startsWith('  ')).map((l) => l.trim().split(':')[0]));
    expect([...keys].sort()).toEqual(
      ['bogus', 'log.level', 'server.listen', 'server.lisen', 'upstreams.acr.connect_timeout', 'upstreams.acr.password', 'upstreams.acr.url'].sort(),
    );
  });

  it('reports every missing secret together', () => {
    const msg = parseError(
      {
        upstreams: {
          a: { url: URL_, username: 'u', password_env: 'A_PW' },
          b: { url: URL_, username: 'u', password_env: 'B_PW' },
          c: { url: URL_, username: 'u', password_file: 'missing' },
        },
        routes: [{ prefix: '', upstream: 'a' }],
      },
      {},
      tmp,
    );
    expect(msg).toMatch(/upstreams\.a\.password_env: .*A_PW/);
    expect(msg).toMatch(/upstreams\.b\.password_env: .*B_PW/);
    expect(msg).toContain('upstreams.c.password_file:');
  });
});

describe('parseDuration', () => {
  it.each([
    ['0s', 0],
    ['500ms', 500],
    ['1ms', 1],
    ['30s', 30_000],
    ['1.5s', 1_500],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['2d', 172_800_000],
    [' 30s ', 30_000],
    ['30 s', 30_000],
    ['0.5m', 30_000],
  ])('%j -> %d ms', (value, ms) => {
    expect(parseDuration(value)).toBe(ms);
  });

  it.each([[''], ['30'], ['s'], ['-1s'], ['+1s'], ['1w'], ['30S'], ['1h30m'], ['1.s'], ['.5s'], ['1e3ms'], ['30 sec'], ['NaNs'], ['Infinitys']])(
    'rejects %j',
    (value) => {
      expect(parseDuration(value)).toBeNull();
    },
  );
});

describe('parseSize', () => {
  it.each([
    ['0', 0],
    ['1024', 1024],
    ['10b', 10],
    ['10B', 10],
    ['1kb', 1_000],
    ['1KB', 1_000],
    ['512 MB', 512_000_000],
    ['2gb', 2_000_000_000],
    ['1tb', 1e12],
    ['1KiB', 1_024],
    ['1.5KiB', 1_536],
    ['200GiB', 200 * 2 ** 30],
    ['1mib', 2 ** 20],
    ['1TiB', 2 ** 40],
    [' 7 kib ', 7_168],
  ])('%j -> %d bytes', (value, bytes) => {
    expect(parseSize(value)).toBe(bytes);
  });

  it.each([[''], ['GiB'], ['-1'], ['1 k'], ['1 XB'], ['1GiBs'], ['1e3'], ['1,024'], ['ten']])('rejects %j', (value) => {
    expect(parseSize(value)).toBeNull();
  });
});

describe('[storage] backend', () => {
  const OSS_ENV = { ALIBABA_CLOUD_ACCESS_KEY_ID: 'LTAI-id', ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'the-oss-secret' };
  const oss = (table: Record<string, unknown>, backend = 'oss') => ({ storage: { backend, oss: table } });

  it('resolves [storage.oss] with its defaults, the access key from the environment, and the region in ali-oss form', () => {
    const c = parse(oss({ bucket: 'mirror-blobs', region: 'cn-hangzhou', internal: true, prefix: 'acr/' }), OSS_ENV);
    expect(c.storage.backend).toBe('oss');
    const { credentials, ...rest } = c.storage.oss!;
    expect(rest).toEqual({ bucket: 'mirror-blobs', region: 'oss-cn-hangzhou', internal: true, prefix: 'acr/', timeout: 60_000, part_size: 8 * 1024 * 1024, redirect: false });
    expect('accessKeyId' in credentials && [credentials.accessKeyId.reveal(), credentials.accessKeySecret.reveal()]).toEqual(['LTAI-id', 'the-oss-secret']);
    expect(JSON.stringify(c)).not.toContain('the-oss-secret');
    const named = parse(oss({ bucket: 'mirror-blobs', endpoint: 'https://oss-cn-shanghai-internal.aliyuncs.com', access_key_id_env: 'OSS_ID', access_key_secret_env: 'OSS_SECRET', part_size: '16MiB', timeout: '2m', redirect: true }), { OSS_ID: 'i', OSS_SECRET: 's' });
    expect(named.storage.oss).toMatchObject({ endpoint: 'https://oss-cn-shanghai-internal.aliyuncs.com', part_size: 16 * 1024 * 1024, timeout: 120_000, prefix: '', redirect: true });
    expect(parse({ storage: { backend: 'fs' } }).storage.oss).toBeUndefined();
  });

  it('names the key of every mistake in [storage] and [storage.oss]', () => {
    expect(parseError({ storage: { backend: 'oss' } }, OSS_ENV)).toContain('storage.oss: backend = "oss" needs a [storage.oss] table');
    expect(parseError(oss({ bucket: 'mirror-blobs', region: 'cn-hangzhou' }, 'fs'), OSS_ENV)).toContain('storage.backend: [storage.oss] is configured');
    expect(parseError({ storage: { backend: 's3' } })).toContain('storage.backend: must be one of "fs", "oss" (got "s3")');
    expect(parseError(oss({ bucket: 'Mirror_Blobs', region: 'cn-hangzhou' }), OSS_ENV)).toContain('storage.oss.bucket: must be an OSS bucket name');
    expect(parseError(oss({ bucket: 'mirror-blobs' }), OSS_ENV)).toContain('storage.oss.endpoint: set either endpoint or region');
    expect(parseError(oss({ bucket: 'mirror-blobs', region: 'cn-hangzhou', endpoint: 'https://oss-cn-hangzhou.aliyuncs.com' }), OSS_ENV)).toContain('storage.oss.endpoint: set either endpoint or region');
    expect(parseError(oss({ bucket: 'mirror-blobs', endpoint: 'https://oss-cn-hangzhou.aliyuncs.com', internal: true }), OSS_ENV)).toContain('storage.oss.internal:');
    expect(parseError(oss({ bucket: 'mirror-blobs', region: 'cn-hangzhou', part_size: '64KiB' }), OSS_ENV)).toMatch(/storage\.oss\.part_size: invalid size "64KiB" between 102400 and/);
    expect(parseError(oss({ bucket: 'mirror-blobs', region: 'cn-hangzhou', prefix: '/abs' }), OSS_ENV)).toContain('storage.oss.prefix:');
    expect(parseError(oss({ bucket: 'mirror-blobs', region: 'cn-hangzhou', prefix: 'a/../b/' }), OSS_ENV)).toContain('storage.oss.prefix: must not contain');
    expect(parseError(oss({ bucket: 'mirror-blobs', region: 'cn-hangzhou', access_key_secret: 'in-the-file' }), OSS_ENV)).toContain('storage.oss.access_key_secret: unknown key');
    expect(parseError(oss({ bucket: 'mirror-blobs', region: 'cn-hangzhou', timeout: 'soon' }), OSS_ENV)).toContain('storage.oss.timeout: invalid duration');
  });

  it('names the environment variables that are not set, never a value', () => {
    const msg = parseError(oss({ bucket: 'mirror-blobs', region: 'cn-hangzhou', access_key_secret_env: 'OSS_SECRET' }), { ALIBABA_CLOUD_ACCESS_KEY_ID: 'LTAI-id' });
    expect(msg).toContain('storage.oss.access_key_secret_env: environment variable OSS_SECRET is not set');
    expect(msg).not.toContain('access_key_id_env');
    expect(msg).not.toContain('LTAI-id');
  });

  it('signs with the ECS instance\'s RAM role instead, needing no access key in the environment', () => {
    const c = parse(oss({ bucket: 'mirror-blobs', region: 'cn-hangzhou', ecs_ram_role: 'acr-mirror-oss' }), {});
    expect(c.storage.oss!.credentials).toEqual({ ecsRamRole: 'acr-mirror-oss' });
  });

  it('takes exactly one way of signing, and names the keys otherwise', () => {
    const both = parseError(oss({ bucket: 'mirror-blobs', region: 'cn-hangzhou', ecs_ram_role: 'acr-mirror-oss', access_key_id_env: 'OSS_ID' }), OSS_ENV);
    expect(both).toContain('storage.oss.ecs_ram_role: set either ecs_ram_role or access_key_id_env/access_key_secret_env, not both');
    const neither = parseError(oss({ bucket: 'mirror-blobs', region: 'cn-hangzhou' }), {});
    expect(neither).toContain('storage.oss.access_key_id_env: environment variable ALIBABA_CLOUD_ACCESS_KEY_ID is not set (or set storage.oss.ecs_ram_role');
    expect(parseError(oss({ bucket: 'mirror-blobs', region: 'cn-hangzhou', ecs_ram_role: 'no/slash' }), {})).toContain('storage.oss.ecs_ram_role: must be a RAM role name');
  });
});
