// How the mirror presents itself to clients: HTTPS beside plain HTTP, and configuration mistakes stopping
// start-up with a message that names the key.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltImage } from './harness/images.js';
import { expectSameImage, mirrorConfig } from './harness/mirror-check.js';
import { startMirror, type MirrorProcess } from './harness/mirror-process.js';
import { startUpstream, type Upstream } from './harness/upstream.js';

const MAIN = resolve(import.meta.dirname, '../../dist/main.js');

describe('HTTPS for clients', () => {
  let up: Upstream;
  let mirror: MirrorProcess;
  let image: BuiltImage;
  let certDir: string;

  beforeAll(async () => {
    certDir = await mkdtemp(join(tmpdir(), 'acr-mirror-tls-'));
    // a CA, and a server certificate it signs for 127.0.0.1 / localhost
    const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: certDir, stdio: 'pipe' });
    ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=acr-mirror test CA');
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
    await writeFile(join(certDir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
    ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'ext.cnf');

    up = await startUpstream();
    image = await up.pushImage({ kind: 'oci', repo: 'team/tls-app', tag: 'v1', layers: [300_000], seed: 's51' });
    const tls = `\n[server]\ntls_listen = "127.0.0.1:0"\ntls_cert = "${join(certDir, 'server.crt')}"\ntls_key = "${join(certDir, 'server.key')}"\n`;
    mirror = await startMirror({ config: mirrorConfig(up) + tls, env: { ACR_PASSWORD: up.credentials.password } });
  });

  afterAll(async () => {
    await mirror?.stop();
    await up?.stop();
    if (certDir) await rm(certDir, { recursive: true, force: true });
  });

  it('serves the same API over HTTPS (verified against the CA) and plain HTTP', async () => {
    expect(mirror.tlsUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const dispatcher = new Agent({ connect: { ca: await readFile(join(certDir, 'ca.crt'), 'utf8') } });
    try {
      const res = await undiciFetch(`${mirror.tlsUrl}/v2/`, { dispatcher });
      expect(res.status).toBe(200);
      expect(res.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
    } finally {
      await dispatcher.close();
    }
    expect((await fetch(`${mirror.url}/v2/`)).status).toBe(200);
  });

  it('skopeo pulls over HTTPS trusting only the test CA', async () => {
    const certs = join(certDir, 'client');
    execFileSync('mkdir', ['-p', certs]);
    await writeFile(join(certs, 'ca.crt'), await readFile(join(certDir, 'ca.crt')));
    const host = new URL(mirror.tlsUrl!).host;
    const out = join(up.dir, 'tls-copy');
    const r = await up.skopeo(['copy', '--src-cert-dir', certs, `docker://${host}/${image.repo}:${image.tag}`, `dir:${out}`]);
    expect(r.code, r.stderr).toBe(0);
    await expectSameImage(out, image);
    const untrusted = await up.skopeo(['inspect', '--raw', `docker://${host}/${image.repo}:${image.tag}`]);
    expect(untrusted.code).not.toBe(0);
    expect(untrusted.stderr).toMatch(/x509|certificate/);
  });
});

describe('configuration errors stop start-up and name the key', () => {
  it.each([
    ['[server]\nlisten = "127.0.0.1:99999"\n', 'server.listen: port must be 0 to 65535'],
    ['[upstreams.acr]\nurl = "https://r.example"\nconect_timeout = "5s"\n', 'upstreams.acr.conect_timeout: unknown key'],
    ['[upstreams.acr]\nurl = "http://r.example"\n', 'upstreams.acr.url: plain http:// needs insecure = true'],
    ['[upstreams.acr]\nurl = "https://r.example"\npassword = "hunter2"\n', 'upstreams.acr.password: passwords do not belong in config.toml'],
    ['[server]\ntls_listen = "0.0.0.0:5443"\n', 'server.tls_listen: needs tls_cert and tls_key'],
    ['[access]\nallow = ["10.0.0.0/33"]\n', 'access.allow[0]: must be an address or CIDR'],
    ['[access]\nhtpasswd = "/nonexistent/htpasswd"\n', 'access.htpasswd: cannot read /nonexistent/htpasswd: ENOENT'],
    ['[upstreams.acr]\nurl = "https://r.example"\nusername = "u"\npassword_env = "NOT_SET_ANYWHERE"\n', 'upstreams.acr.password_env: environment variable NOT_SET_ANYWHERE is not set'],
  ])('%j', async (toml, message) => {
    const dir = await mkdtemp(join(tmpdir(), 'acr-mirror-badconf-'));
    try {
      await writeFile(join(dir, 'config.toml'), toml);
      const r = spawnSync(process.execPath, [MAIN, '--config', join(dir, 'config.toml'), 'serve'], { encoding: 'utf8', timeout: 10_000 });
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(message);
      expect(r.stderr).not.toContain('hunter2');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
