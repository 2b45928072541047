// The built CLI checks the bucket before serving (and in check-config): one line naming the bucket, endpoint and reason.
// A bucket that refuses (credentials, no such bucket) stops serve; one that does not answer is an outage serve rides out.
import { execFile, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OssTestServer } from '../support/oss-server.js';

const MAIN = resolve(import.meta.dirname, '../../dist/main.js');

let oss: OssTestServer;
let dir: string;
beforeEach(async () => {
  oss = await OssTestServer.start({ buckets: ['acr-cache'], credentials: { 'good-ak': 'good-secret' } });
  dir = await mkdtemp(join(tmpdir(), 'acr-oss-startup-'));
});
afterEach(async () => {
  await oss.close();
  await rm(dir, { recursive: true, force: true });
});

/** Runs the CLI with [storage.oss] on the test server; its exit code and output. */
async function cli(command: string, o: { bucket?: string; endpoint?: string; key?: [string, string]; more?: string[]; env?: Record<string, string> } = {}) {
  const [id, secret] = o.key ?? ['good-ak', 'good-secret'];
  const config = join(dir, 'config.toml');
  await writeFile(config, [
    '[server]', 'listen = "127.0.0.1:0"',
    '[storage]', 'backend = "oss"', `dir = "${join(dir, 'data')}"`,
    '[storage.oss]', `bucket = "${o.bucket ?? 'acr-cache'}"`, `endpoint = "${o.endpoint ?? oss.endpoint}"`, ...(o.more ?? []),
  ].join('\n'));
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', ...(o.env ?? { ALIBABA_CLOUD_ACCESS_KEY_ID: id, ALIBABA_CLOUD_ACCESS_KEY_SECRET: secret }) };
  return new Promise<{ code: number; out: string; err: string }>((done) => {
    execFile(process.execPath, [MAIN, '-c', config, command], { env, timeout: 60_000 }, (error, out, err) => {
      done({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, out, err });
    });
  });
}

/** Starts `serve` with the CLI's configuration, reads its log lines until it listens, and stops it. */
async function serveUntilListening(o: { endpoint: string }): Promise<Record<string, unknown>[]> {
  const config = join(dir, 'config.toml');
  await writeFile(config, [
    '[server]', 'listen = "127.0.0.1:0"',
    '[storage]', 'backend = "oss"', `dir = "${join(dir, 'data')}"`,
    '[storage.oss]', 'bucket = "acr-cache"', `endpoint = "${o.endpoint}"`,
  ].join('\n'));
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', ALIBABA_CLOUD_ACCESS_KEY_ID: 'good-ak', ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'good-secret' };
  const child = spawn(process.execPath, [MAIN, '-c', config, 'serve'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: Record<string, unknown>[] = [];
  try {
    for await (const line of createInterface({ input: child.stdout })) {
      lines.push(JSON.parse(line) as Record<string, unknown>);
      if (lines.at(-1)!.msg === 'listening') break;
    }
  } finally {
    child.kill('SIGKILL');
  }
  return lines;
}

describe('the bucket check at start-up and in check-config', () => {
  it('check-config says the bucket answers', async () => {
    const r = await cli('check-config');
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toContain(`OSS bucket acr-cache at ${oss.endpoint} answers`);
  });

  it.each([
    ['a wrong access key', { key: ['wrong-ak', 'good-secret'] }, 'access key rejected (InvalidAccessKeyId)'],
    ['a wrong secret', { key: ['good-ak', 'wrong-secret'] }, 'access key secret rejected: the signature does not match (SignatureDoesNotMatch)'],
    ['a bucket that does not exist', { bucket: 'no-such-cache' }, 'no such bucket (NoSuchBucket)'],
  ] as const)('%s: one line naming the bucket, endpoint and reason, exit 2, for serve and check-config', async (_what, setting, reason) => {
    const bucket = 'bucket' in setting ? setting.bucket : 'acr-cache';
    for (const command of ['serve', 'check-config']) {
      const r = await cli(command, setting as { bucket?: string; key?: [string, string] });
      expect({ command, code: r.code, err: r.err, out: r.out }).toEqual({ command, code: 2, err: `acr-mirror: OSS bucket ${bucket} at ${oss.endpoint}: ${reason}\n`, out: '' });
    }
  });

  it('an endpoint nothing answers at: check-config fails with the connection error; serve starts, warning (an outage, not a wrong configuration)', async () => {
    const endpoint = oss.endpoint;
    await oss.close();
    const r = await cli('check-config', { endpoint });
    expect({ code: r.code, err: r.err }).toEqual({ code: 2, err: `acr-mirror: OSS bucket acr-cache at ${endpoint}: unreachable (ECONNREFUSED)\n` });

    const lines = await serveUntilListening({ endpoint });
    const warning = lines.find((l) => l.level === 40);
    expect(warning).toMatchObject({ problem: `OSS bucket acr-cache at ${endpoint}: unreachable (ECONNREFUSED)` });
    expect(String(warning?.msg)).toContain('serving from the local disk and the upstreams');
    expect(lines.some((l) => l.msg === 'listening')).toBe(true);
  });

  it('a RAM role whose keys cannot be had: the reason from @alicloud/credentials, exit 2', async () => {
    // The SDK refuses the metadata service when told to: no request leaves for 100.100.100.200.
    const setting = { more: ['ecs_ram_role = "acr-mirror-oss"'], env: { ALIBABA_CLOUD_ECS_METADATA_DISABLED: 'true' } };
    for (const command of ['serve', 'check-config']) {
      const r = await cli(command, setting);
      const reason = 'cannot get OSS credentials from ECS RAM role acr-mirror-oss: IMDS credentials is disabled';
      expect({ command, code: r.code, err: r.err }).toEqual({ command, code: 2, err: `acr-mirror: OSS bucket acr-cache at ${oss.endpoint}: ${reason}\n` });
    }
    expect(oss.faults.count('GetBucketInfo')).toBe(0);
  });
});
