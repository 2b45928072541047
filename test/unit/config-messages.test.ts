// Configuration mistakes in the operator's terms: the key, what was given, what is allowed; a mistyped key gets
// "did you mean"; an offline upstream needs none of its secrets.
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.js';

const URL_ = 'https://registry.cn-hangzhou.aliyuncs.com';

function problems(raw: unknown, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(raw, { env, baseDir: '/srv/mirror', source: 'test.toml' });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).message.split('\n').slice(1);
  }
  throw new Error('expected a ConfigError');
}

describe('type errors say the key, what was given and what is allowed', () => {
  it.each([
    [{ server: { listen: 5000 } }, 'server.listen: must be a string in quotes (got 5000, a number)'],
    [{ log: { level: 'verbose' } }, 'log.level: must be one of "trace", "debug", "info", "warn", "error", "fatal", "silent" (got "verbose")'],
    [{ cache: { prefetch: 'yes' } }, 'cache.prefetch: must be true or false (got "yes")'],
    [{ cache: { max_fills: 0 } }, 'cache.max_fills: must be at least 1 (got 0, a number)'],
    [{ cache: { max_fills: 1.5 } }, 'cache.max_fills: must be a whole number (got 1.5, a number)'],
    [{ upstreams: { acr: { url: URL_, retries: 11 } } }, 'upstreams.acr.retries: must be at most 10 (got 11, a number)'],
    [{ access: { allow: [] } }, 'access.allow: must be at least 1 item(s) (got an array of 0)'],
    [{ access: { allow: '10.0.0.0/8' } }, 'access.allow: must be an array (got "10.0.0.0/8")'],
    [{ server: ['127.0.0.1:5000'] }, 'server: must be a table (got an array of 1)'],
    [{ storage: { dir: '' } }, 'storage.dir: must not be empty (got "")'],
    [{ routes: [{ prefix: '' }] }, 'routes[0].upstream: required (a string in quotes)'],
    [{ upstreams: { acr: { url: URL_, hosts: { 'r.example': 'nope' } } } }, 'upstreams.acr.hosts.r.example: must be an IPv4 or IPv6 address (got "nope")'],
    [{ upstreams: { acr: { url: URL_, proxy: 3128 } } }, 'upstreams.acr.proxy: must be "", or a string in quotes (got 3128, a number)'],
    [{ upstreams: { acr: { url: URL_, token_realms: ['bad host'] } } }, 'upstreams.acr.token_realms[0]: must be a host name, "*" standing for one label, e.g. dockerauth.*.aliyuncs.com (got "bad host")'],
  ])('%j', (raw, line) => {
    const found = problems(raw);
    expect(found).toContain(`  ${line}`);
    expect(found.join('\n')).not.toMatch(/Expected|received|Invalid enum|Required/);
  });

  it('never echoes a password given in the file', () => {
    const found = problems({ upstreams: { acr: { url: URL_, username: 'u', password: 'hunter2' } } });
    expect(found).toContain('  upstreams.acr.password: passwords do not belong in config.toml: use password_env or password_file (got a string)');
    expect(found.join('\n')).not.toContain('hunter2');
  });
});

describe('unknown keys near a known one get "did you mean"', () => {
  it.each([
    [{ sever: {} }, 'sever: unknown key (did you mean server?)'],
    [{ server: { lisen: '127.0.0.1:1' } }, 'server.lisen: unknown key (did you mean listen?)'],
    [{ server: { max_conections: 3 } }, 'server.max_conections: unknown key (did you mean max_connections?)'],
    [{ cache: { prefech: true } }, 'cache.prefech: unknown key (did you mean prefetch?)'],
    [{ upstreams: { acr: { url: URL_, conect_timeout: '5s' } } }, 'upstreams.acr.conect_timeout: unknown key (did you mean connect_timeout?)'],
    [{ upstreams: { acr: { url: URL_, temporary_credentials: { edition: 'personal', region: 'cn-hangzhou', regoin: 'x' } } } }, 'upstreams.acr.temporary_credentials.regoin: unknown key (did you mean region?)'],
    [{ routes: [{ prefix: '', upstream: 'acr', rewrite_to: 'x' }] }, 'routes[0].rewrite_to: unknown key (did you mean rewrite?)'],
    [{ storage: { max_szie: '1GiB' } }, 'storage.max_szie: unknown key (did you mean max_size?)'],
    [{ server: { bogus: 1 } }, 'server.bogus: unknown key'],
    [{ admin: { token: 'x' } }, 'admin.token: unknown key'],
  ])('%j', (raw, line) => {
    expect(problems(raw)).toContain(`  ${line}`);
  });
});

describe('an offline upstream needs none of its secrets', () => {
  const login = { url: URL_, username: 'u', password_env: 'ACR_PASSWORD' };
  const temporary = { url: URL_, temporary_credentials: { edition: 'personal', region: 'cn-hangzhou' } };

  it.each([
    ['cache.offline', { cache: { offline: true }, upstreams: { acr: login } }],
    ['upstreams.acr.offline', { upstreams: { acr: { ...login, offline: true } } }],
    ['cache.offline, temporary credentials', { cache: { offline: true }, upstreams: { acr: temporary } }],
    ['upstreams.acr.offline, password file', { upstreams: { acr: { url: URL_, username: 'u', password_file: 'missing', offline: true } } }],
  ])('%s', (_label, raw) => {
    const config = parseConfig(raw, { env: {}, baseDir: '/nonexistent', source: 'test.toml' });
    expect(config.upstreams.acr!.credentials).toBeUndefined();
  });

  it('an upstream that is not offline still needs them, beside an offline one', () => {
    const found = problems({ upstreams: { acr: login, other: { ...temporary, offline: true } }, routes: [{ prefix: '', upstream: 'acr' }] });
    expect(found).toEqual(['  upstreams.acr.password_env: environment variable ACR_PASSWORD is not set']);
  });
});
