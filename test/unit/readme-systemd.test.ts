// The README's systemd recipe: the unit is checked by systemd-analyze verify (required under CI), agrees with the
// set-up commands beside it (user, paths, env file mode), and puts the cache in its state directory whatever
// storage.dir the copied config.toml says.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { readmeBlocks } from '../support/readme.js';

const ROOT = resolve(import.meta.dirname, '../..');

const unitText = readmeBlocks('ini').find((b) => b.includes('[Service]'))!;
const setup = readmeBlocks('sh').find((b) => b.includes('useradd'))!;
const install = readmeBlocks('sh').find((b) => b.includes('npm install -g .'))!;

/** The unit's settings: section -> key -> values (a key may be given several times). */
function unitSettings(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const line of text.split('\n').map((l) => l.trim())) {
    if (!line || line.startsWith('#')) continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) sections.set(header[1]!, (current = new Map()));
    else {
      const [key, ...value] = line.split('=');
      current!.set(key!, [...(current!.get(key!) ?? []), value.join('=')]);
    }
  }
  return sections;
}

const unit = unitSettings(unitText ?? '');
const get = (section: string, key: string) => unit.get(section)?.get(key) ?? [];
const one = (section: string, key: string) => {
  expect(get(section, key), `${section}.${key}`).toHaveLength(1);
  return get(section, key)[0]!;
};

describe('README systemd unit', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'acr-mirror-systemd-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is in the README with its set-up commands', () => {
    expect(unitText).toBeDefined();
    expect(setup).toBeDefined();
    expect(install).toBeDefined();
  });

  it('passes systemd-analyze verify', (ctx) => {
    const available = spawnSync('systemd-analyze', ['--version']).status === 0;
    if (!available) {
      // CI installs the systemd package (.ci/run): there, a missing systemd-analyze is a failure, not a skip
      expect(process.env.CI, 'systemd-analyze is missing (Debian package systemd)').not.toBe('true');
      ctx.skip('systemd-analyze is not installed here (Debian package systemd)');
    }
    // the README's unit runs Debian's node; elsewhere verify would only report that /usr/bin/node is absent
    const text = existsSync('/usr/bin/node') ? unitText : unitText.replace('/usr/bin/node', process.execPath);
    const path = join(dir, 'acr-mirror.service');
    writeFileSync(path, text);
    const verify = spawnSync('systemd-analyze', ['verify', '--man=no', path], { encoding: 'utf8' });
    expect(verify.status, verify.stderr).toBe(0);
    // unknown keys and bad values are only warnings: there must be none
    expect(verify.stderr).toBe('');
  });

  it('starts after the network is up, as the user the set-up creates, with the env file it writes mode 0600', () => {
    expect(get('Unit', 'Wants')).toContain('network-online.target');
    expect(get('Unit', 'After')).toContain('network-online.target');
    expect(get('Install', 'WantedBy')).toEqual(['multi-user.target']);
    const user = one('Service', 'User');
    expect(setup).toMatch(new RegExp(`^sudo useradd --system .*\\s${user}$`, 'm'));
    expect(setup).toContain(`sudo install -m 0600 /dev/null ${one('Service', 'EnvironmentFile')}`);
    const [node, main, , config, command] = one('Service', 'ExecStart').split(' ');
    expect([node, command]).toEqual(['/usr/bin/node', 'serve']);
    expect(setup).toMatch(new RegExp(`^sudo install -m 0644 \\S+/config\\.toml ${config}\\s`, 'm'));
    // the code is where the install commands put it
    const checkout = /^sudo git clone \S+ (\S+)/m.exec(install)![1]!;
    expect(main).toBe(`${checkout}/dist/main.js`);
    expect(one('Service', 'WorkingDirectory')).toBe(`/var/lib/${one('Service', 'StateDirectory')}`);
  });

  it('keeps the cache in its state directory, whatever storage.dir the copied config.toml says', () => {
    expect(one('Service', 'StateDirectory')).toBe('acr-mirror');
    const env = Object.fromEntries(get('Service', 'Environment').map((e) => e.split('=') as [string, string]));
    expect(env.ACR_MIRROR_STORAGE_DIR).toBe('/var/lib/acr-mirror');
    // the committed config.toml, copied to /etc/acr-mirror as the set-up does (dir = "data" in it)
    mkdirSync(join(dir, 'etc'));
    copyFileSync(join(ROOT, 'config.toml'), join(dir, 'etc', 'config.toml'));
    const config = loadConfig({ path: join(dir, 'etc', 'config.toml'), env, cwd: one('Service', 'WorkingDirectory') });
    expect(config.storage.dir).toBe('/var/lib/acr-mirror');
    expect(loadConfig({ path: join(dir, 'etc', 'config.toml'), env: {} }).storage.dir).toBe(join(dir, 'etc', 'data'));
  });
});
