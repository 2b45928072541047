import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.js';

const SECRET = '3f9c1a7e5b2d48c6a0e1f7b9d3c5a8e2';
const A = 'http://10.0.0.11:5000';
const B = 'http://10.0.0.12:5000';
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'acr-mirror-cluster-config-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const parse = (cluster: Record<string, unknown>, env: NodeJS.ProcessEnv = { PEER_SECRET: SECRET }) =>
  parseConfig({ cluster }, { env, baseDir: dir, source: 'test.toml' });

function errorOf(cluster: Record<string, unknown>, env?: NodeJS.ProcessEnv): string {
  try {
    parse(cluster, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('[cluster] configuration', () => {
  it('is absent by default', () => {
    expect(parseConfig({}, { env: {}, baseDir: dir, source: 't' }).cluster).toBeUndefined();
  });

  it('reads self, members, the secret from the environment and the forward timeout (default 5s)', () => {
    const c = parse({ self: `${A}/`, members: [A, B], secret_env: 'PEER_SECRET' }).cluster!;
    expect(c.self).toBe(A);
    expect(c.members).toEqual([A, B]);
    expect(c.forward_timeout).toBe(5000);
    expect(c.secret.reveal()).toBe(SECRET);
    expect(inspect(c)).not.toContain(SECRET);
    expect(JSON.stringify(c)).not.toContain(SECRET);
  });

  it('reads the secret from a file', () => {
    writeFileSync(join(dir, 'secret'), `${SECRET}\n`);
    const c = parse({ self: A, members: [A], secret_file: 'secret', forward_timeout: '2s' }, {}).cluster!;
    expect(c.secret.reveal()).toBe(SECRET);
    expect(c.forward_timeout).toBe(2000);
  });

  it.each([
    [{ self: A, members: [B], secret_env: 'PEER_SECRET' }, 'cluster.self: http://10.0.0.11:5000 is not one of members'],
    [{ self: A, members: [A, B, `${B}/`], secret_env: 'PEER_SECRET' }, 'cluster.members[2]: http://10.0.0.12:5000 is listed twice'],
    [{ self: A, members: [A, 'http://10.0.0.12:5000/v2'], secret_env: 'PEER_SECRET' }, 'cluster.members[1]: must be scheme://host:port with no path'],
    [{ self: 'ftp://x', members: [A], secret_env: 'PEER_SECRET' }, 'cluster.self: must be scheme://host:port'],
    [{ self: A, members: [], secret_env: 'PEER_SECRET' }, 'cluster.members:'],
    [{ self: A, members: [A] }, 'cluster.secret_env: set either secret_env or secret_file'],
    [{ self: A, members: [A], secret_env: 'PEER_SECRET', secret_file: 'x' }, 'cluster.secret_env: set either secret_env or secret_file'],
    [{ self: A, members: [A], secret: SECRET }, 'cluster.secret: unknown key'],
    [{ self: A, members: [A], secret_env: 'PEER_SECRET', forward_timeout: 'soon' }, 'cluster.forward_timeout: invalid duration'],
  ])('refuses %j naming the key', (cluster, message) => {
    expect(errorOf(cluster)).toContain(message);
  });

  it('refuses a missing, unreadable or guessable secret', () => {
    expect(errorOf({ self: A, members: [A], secret_env: 'NOT_SET' })).toContain('cluster.secret_env: environment variable NOT_SET is not set');
    expect(errorOf({ self: A, members: [A], secret_file: 'missing' })).toContain('cluster.secret_file: cannot read');
    const weak = errorOf({ self: A, members: [A], secret_env: 'PEER_SECRET' }, { PEER_SECRET: 'secretsecretsecret' });
    expect(weak).toContain('cluster.secret_env: the cluster secret is too easy to guess');
    expect(weak).not.toContain('secretsecretsecret');
  });
});
