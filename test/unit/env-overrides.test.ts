// The environment overrides listen, storage dir and allow over the configuration file (the container image and the
// systemd unit rely on it), and commands that talk to a running mirror find it from the configuration.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mirrorUrl } from '../../src/cli/mirror-url.js';
import { ConfigError, loadConfig, loadListeners } from '../../src/config/load.js';

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'acr-mirror-env-'));
  path = join(dir, 'config.toml');
  writeFileSync(path, ['[server]', 'listen = "127.0.0.1:5000"', '[access]', 'allow = ["127.0.0.0/8"]', '[storage]', 'dir = "data"'].join('\n'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('environment overrides', () => {
  it('replace listen, storage dir and allow of the file, and the source says so', () => {
    const env = { ACR_MIRROR_LISTEN: '0.0.0.0:5000', ACR_MIRROR_STORAGE_DIR: '/data', ACR_MIRROR_ALLOW: '10.0.0.0/8, 192.168.0.0/16,' };
    const config = loadConfig({ path, env });
    expect(config.server.listen).toBe('0.0.0.0:5000');
    expect(config.storage.dir).toBe('/data');
    expect(config.access.allow).toEqual(['10.0.0.0/8', '192.168.0.0/16']);
    expect(config.source).toBe(`${path} with ACR_MIRROR_LISTEN, ACR_MIRROR_STORAGE_DIR, ACR_MIRROR_ALLOW from the environment`);
  });

  it('replace cluster.self, so that one file serves every replica', () => {
    const members = ['http://acr-mirror-0.peers:5000', 'http://acr-mirror-1.peers:5000'];
    writeFileSync(path, ['[cluster]', `members = ${JSON.stringify(members)}`, `self = "${members[0]}"`, 'secret_env = "CLUSTER_SECRET"'].join('\n'));
    const config = loadConfig({ path, env: { ACR_MIRROR_CLUSTER_SELF: members[1], CLUSTER_SECRET: '8d41c7e09b2f46a3a5e6f1c07b9d2e54' } });
    expect(config.cluster?.self).toBe(members[1]);
    expect(config.source).toBe(`${path} with ACR_MIRROR_CLUSTER_SELF from the environment`);
  });

  it('leave the file alone when unset or empty; a relative storage dir is relative to the working directory', () => {
    const config = loadConfig({ path, env: { ACR_MIRROR_LISTEN: '' } });
    expect(config.server.listen).toBe('127.0.0.1:5000');
    expect(config.storage.dir).toBe(join(dir, 'data'));
    expect(config.source).toBe(path);
    expect(loadConfig({ path, env: { ACR_MIRROR_STORAGE_DIR: 'cache' }, cwd: '/srv' }).storage.dir).toBe('/srv/cache');
  });

  it('apply to the built-in defaults too', () => {
    const config = loadConfig({ env: { ACR_MIRROR_LISTEN: '0.0.0.0:5001' }, cwd: dir + '/nowhere' });
    expect(config.server.listen).toBe('0.0.0.0:5001');
    expect(config.source).toBe('built-in defaults with ACR_MIRROR_LISTEN from the environment');
  });

  it('are validated like the file, and the error names the variable', () => {
    const err = (() => {
      try {
        loadConfig({ path, env: { ACR_MIRROR_LISTEN: '5000', ACR_MIRROR_ALLOW: '10.0.0.0/33' } });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain('with ACR_MIRROR_LISTEN, ACR_MIRROR_ALLOW from the environment: invalid configuration');
    expect((err as Error).message).toMatch(/server\.listen: must be host:port/);
    expect((err as Error).message).toMatch(/access\.allow\[0\]: must be an address or CIDR/);
  });
});

describe('the mirror a command talks to', () => {
  it('is read from the configuration without its secrets', () => {
    writeFileSync(path, ['[server]', 'listen = "0.0.0.0:5123"', '[upstreams.acr]', 'url = "https://registry.cn-hangzhou.aliyuncs.com"', 'username = "u"', 'password_env = "UNSET_PASSWORD"'].join('\n'));
    expect(() => loadConfig({ path, env: {} })).toThrow(/UNSET_PASSWORD is not set/);
    expect(loadListeners({ path, env: {} })).toEqual({ listen: '0.0.0.0:5123', source: path });
    expect(loadListeners({ path, env: { ACR_MIRROR_LISTEN: '127.0.0.1:6000' } }).listen).toBe('127.0.0.1:6000');
  });

  it('is the plain listener, over loopback when it listens everywhere', () => {
    expect(mirrorUrl({ listen: '0.0.0.0:5000' })).toBe('http://127.0.0.1:5000');
    expect(mirrorUrl({ listen: '[::]:5000' })).toBe('http://[::1]:5000');
    expect(mirrorUrl({ listen: '127.0.0.2:80' })).toBe('http://127.0.0.2');
    expect(mirrorUrl({ listen: 'localhost:5000', tls_listen: '0.0.0.0:5443' })).toBe('http://localhost:5000');
    expect(mirrorUrl({ listen: '0.0.0.0:5000', tls_listen: '0.0.0.0:5443' })).toBe('http://127.0.0.1:5000');
    expect(mirrorUrl({ listen: '10.1.2.3:5000' })).toBe('http://10.1.2.3:5000');
  });

  it('is the HTTPS listener when the plain one faces the network only', () => {
    expect(mirrorUrl({ listen: '10.1.2.3:5000', tls_listen: 'mirror.lan:5443' })).toBe('https://mirror.lan:5443');
    expect(mirrorUrl({ listen: '10.1.2.3:5000', tls_listen: '0.0.0.0:443' })).toBe('https://127.0.0.1');
  });
});
