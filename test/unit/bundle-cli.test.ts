// acr-mirror export and import as an operator runs them: the built CLI against mirrors in this process. A bundle
// filtered to some platforms says which it holds and warns about the indexes it leaves incomplete; an import
// says what it added under which names; a missing required option is a usage error (exit 2).
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeUpstream, makeImage, makeIndex } from '../support/fake-upstream.js';
import { serveMirror, type ServedMirror } from '../support/cli.js';

const mirrors: ServedMirror[] = [];
afterEach(async () => {
  for (const m of mirrors.splice(0)) await m.close();
});

async function mirror(fake: FakeUpstream, config: Record<string, unknown> = {}): Promise<ServedMirror> {
  const m = await serveMirror(fake, config);
  mirrors.push(m);
  return m;
}

/** A port on 127.0.0.1 nothing listens on (it was free a moment ago). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function upstream() {
  const fake = new FakeUpstream();
  const { index, children } = makeIndex('team/multi', 'v1', ['amd64', 'arm64', 's390x'], [2000], 3);
  const single = makeImage('team/app', 'v1', [1000], 4);
  for (const image of [index, ...children, single]) fake.add(image);
  return { fake, index, children, single };
}

describe('acr-mirror export and import', () => {
  it('a platform-filtered bundle: export and import name its platforms and warn about the index it leaves incomplete; import says where each image went', async () => {
    const { fake, index, children, single } = upstream();
    const online = await mirror(fake);
    const bundle = join(online.dir, 'bundle.tar');
    const exported = await online.cli(['export', 'team/multi:v1', 'team/app:v1', '--platform', 'linux/amd64', '-o', bundle]);
    expect(exported.code, exported.stderr).toBe(0);
    expect(exported.stdout).toContain('platforms in the bundle: linux/amd64\n');
    const warning =
      'warning: team/multi:v1 is incomplete: its index also lists linux/arm64, linux/s390x, which the bundle does not hold; ' +
      'a client on those platforms cannot pull it from the mirror the bundle is imported into\n';
    expect(exported.stderr).toContain(warning);
    expect(exported.stderr).not.toContain('team/app:v1');

    // the air-gapped side keeps team/... under ns/... on its upstream
    const offline = await mirror(new FakeUpstream(), { routes: [{ prefix: 'team', upstream: 'acr', rewrite: 'ns' }] });
    const imported = await offline.cli(['import', bundle, '--name', 'team/multi,team/app']);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stdout).toContain(`  cached    team/multi:v1 for upstream acr, repository ns/multi: ${index.manifestDigest}, platforms linux/amd64\n`);
    expect(imported.stdout).toContain(`  cached    team/app:v1 for upstream acr, repository ns/app: ${single.manifestDigest}\n`);
    expect(imported.stdout).toContain(`  added     team/multi:v1 -> ${index.manifestDigest}\n`);
    expect(imported.stdout).toContain('platforms in the bundle: linux/amd64\n');
    expect(imported.stderr).toContain(warning);
    const served = await fetch(`${offline.server.url}/v2/team/multi/manifests/${children[0]!.manifestDigest}`, { headers: { accept: children[0]!.mediaType } });
    expect(served.status).toBe(200);
  });

  it('a bundle of every platform warns about nothing and lists them all', async () => {
    const { fake } = upstream();
    const online = await mirror(fake);
    const exported = await online.cli(['export', 'team/multi:v1', '-o', join(online.dir, 'all.tar')]);
    expect(exported.code, exported.stderr).toBe(0);
    expect(exported.stdout).toContain('platforms in the bundle: linux/amd64, linux/arm64, linux/s390x\n');
    expect(exported.stderr).not.toContain('warning');
  });

  it('a missing required option exits 2 with the usage error, like every other usage error', async () => {
    const online = await mirror(new FakeUpstream());
    const noOutput = await online.cli(['export', 'team/app:v1']);
    expect(noOutput.code).toBe(2);
    expect(noOutput.stderr).toContain("required option '-o, --output <file>' not specified");
    const noNames = await online.cli(['import', join(online.dir, 'missing.tar')]);
    expect(noNames.code).toBe(2);
    const unnamed = await online.cli(['import', join(import.meta.dirname, 'bundle-cli.test.ts')]);
    expect(unnamed.code).toBe(2);
    expect(unnamed.stderr).toContain('acr-mirror import: name the repositories the bundle may add');
    const unknown = await online.cli(['gc', '--no-such-option']);
    expect(unknown.code).toBe(2);
  });

  it('a mirror that cannot be reached is one line and exit status 1, not a stack trace', async () => {
    const online = await mirror(new FakeUpstream());
    const url = `http://127.0.0.1:${await closedPort()}`;
    for (const args of [['export', 'team/app:v1', '-o', join(online.dir, 'x.tar')], ['import', join(import.meta.dirname, 'bundle-cli.test.ts'), '--name', 'team/app']]) {
      const r = await online.cli([...args, '--url', url]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^(exporting .*\\n)?acr-mirror ${args[0]}: cannot reach the mirror at ${url}: .*\\n$`));
    }
  });
});
