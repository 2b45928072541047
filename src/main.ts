#!/usr/bin/env node
import { Command, Option } from 'commander';
import { warmCli } from './admin/cli.js';
import { checkOssBucket, ossEndpointOf } from './cache/oss-bucket-check.js';
import { exportCli, importCli } from './cli/bundle.js';
import { gcCommand } from './cli/gc.js';
import { ConfigError, loadConfig, type Config } from './config/load.js';
import { parseDuration } from './config/units.js';
import { createLogger } from './observability/logger.js';
import { startServer } from './server.js';

const program = new Command()
  .name('acr-mirror')
  .description('Pull-through caching mirror for Alibaba Cloud Container Registry')
  .addOption(new Option('-c, --config <path>', 'configuration file (default: $ACR_MIRROR_CONFIG, else ./config.toml, else built-in defaults)'))
  .showHelpAfterError();

program
  .command('serve', { isDefault: true })
  .description('serve the registry API')
  .option('--listen <host:port>', 'override server.listen')
  .action(async (opts: { listen?: string }) => {
    const config = load();
    if (opts.listen) config.server.listen = opts.listen;
    await refuseUnreachableBucket(config);
    const log = createLogger(config.log.level);
    const server = await startServer(config, log);
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.once(signal, () => {
        log.info({ signal }, 'signal received');
        server.shutdown().then(
          () => process.exit(0),
          (err) => {
            log.error({ err }, 'shutdown failed');
            process.exit(1);
          },
        );
      });
    }
  });

program
  .command('check-config')
  .description('validate the configuration and exit')
  .action(async () => {
    const config = load();
    await refuseUnreachableBucket(config);
    const bucket = config.storage.oss ? `, OSS bucket ${config.storage.oss.bucket} at ${ossEndpointOf(config.storage.oss)} answers` : '';
    process.stdout.write(`configuration OK (${config.source}): ${Object.keys(config.upstreams).length} upstream(s), ${config.routes.length} route(s)${bucket}\n`);
  });

program
  .command('gc')
  .description('remove unreferenced cache entries and stale temp files, and print what was freed')
  .option('--dry-run', 'only print what would be freed')
  .option('--grace <duration>', 'keep what was used within this long (default: storage.gc_grace)')
  .action(async (opts: { dryRun?: boolean; grace?: string }) => {
    const config = load();
    const graceMs = opts.grace === undefined ? undefined : parseDuration(opts.grace);
    if (graceMs === null) {
      process.stderr.write(`acr-mirror: --grace: invalid duration "${opts.grace}" (use e.g. 30m, 24h, 7d)\n`);
      process.exit(2);
    }
    await gcCommand(config, { dryRun: opts.dryRun === true, ...(graceMs !== undefined ? { graceMs } : {}), out: process.stdout });
  });

program
  .command('export')
  .description('write images from a running mirror (fetching what is missing) to an OCI layout tar, for an air gap')
  .argument('<refs...>', 'image references as clients name them, e.g. team/app:1.2')
  .requiredOption('-o, --output <file>', 'the bundle to write')
  .option('--platform <platform>', 'all (default), or os/arch[/variant]; repeat or comma-separate', (p: string, all: string[] = []) => [...all, p])
  .option('--referrers', 'also the referrers of every image (signatures, SBOMs), for verification behind the air gap')
  .addOption(new Option('--url <url>', 'the mirror').env('ACR_MIRROR_URL').default('http://127.0.0.1:5000'))
  .addOption(new Option('--token <token>', 'admin token (prefer the environment variable)').env('ACR_MIRROR_ADMIN_TOKEN'))
  .action(async (refs: string[], opts: { output: string; platform?: string[]; referrers?: boolean; url: string; token?: string }) => {
    process.exitCode = await exportCli({ ...opts, refs, platforms: opts.platform ?? [], stderr: process.stderr, stdout: process.stdout });
  });

program
  .command('import')
  .description('add the images of a bundle to a running mirror (every digest is verified first)')
  .argument('<file>', 'a bundle written by acr-mirror export (or skopeo copy to oci-archive:)')
  .option('--name <repository>', 'a repository the bundle may add images to (required: others are refused); repeat or comma-separate', (n: string, all: string[] = []) => [...all, n])
  .option('--names-from <file>', 'read such repositories from a file, one a line (# comments)')
  .option('--replace', 'allow moving a tag the mirror already has to another digest')
  .option('--expect-digest <digest>', 'refuse the bundle unless its index.json has this digest (as export printed it)')
  .addOption(new Option('--url <url>', 'the mirror').env('ACR_MIRROR_URL').default('http://127.0.0.1:5000'))
  .addOption(new Option('--token <token>', 'admin token (prefer the environment variable)').env('ACR_MIRROR_ADMIN_TOKEN'))
  .action(async (file: string, opts: { name?: string[]; namesFrom?: string; replace?: boolean; expectDigest?: string; url: string; token?: string }) => {
    const { name, replace, ...rest } = opts;
    process.exitCode = await importCli({ ...rest, file, names: name ?? [], replace: replace === true, stderr: process.stderr, stdout: process.stdout });
  });

program
  .command('warm')
  .description("cache images on a running mirror ahead of time (through its admin API), with live progress")
  .argument('[refs...]', 'image references as clients name them, e.g. team/app:1.2 or library/nginx@sha256:...')
  .option('--platform <platform>', 'all (default), or os/arch[/variant] like linux/arm64; repeat or comma-separate', (p: string, all: string[] = []) => [...all, p])
  .option('-f, --file <path>', 'read references from a file, one per line (# comments)')
  .option('--referrers', 'also the referrers of every image (signatures, SBOMs) with their blobs')
  .addOption(new Option('--url <url>', 'the mirror').env('ACR_MIRROR_URL').default('http://127.0.0.1:5000'))
  .addOption(new Option('--token <token>', 'admin token (prefer the environment variable)').env('ACR_MIRROR_ADMIN_TOKEN'))
  .addHelpText('after', '\nExit status: 0 every image warmed, 1 some image failed, 2 the warm could not be started or followed.')
  .action(async (refs: string[], opts: { platform?: string[]; file?: string; referrers?: boolean; url: string; token?: string }) => {
    process.exitCode = await warmCli({
      url: opts.url,
      token: opts.token,
      refs,
      ...(opts.file ? { file: opts.file } : {}),
      ...(opts.platform ? { platforms: opts.platform } : {}),
      ...(opts.referrers ? { referrers: true } : {}),
      stderr: process.stderr,
      stdout: process.stdout,
    });
  });

function load(): Config {
  try {
    return loadConfig({ ...(program.opts().config ? { path: program.opts().config as string } : {}) });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`acr-mirror: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

/** With storage.backend = "oss": the bucket must answer with the configured credentials, else exit 2 saying why. */
async function refuseUnreachableBucket(config: Config): Promise<void> {
  const problem = config.storage.oss ? await checkOssBucket(config.storage.oss) : null;
  if (problem === null) return;
  process.stderr.write(`acr-mirror: ${problem}\n`);
  process.exit(2);
}

await program.parseAsync(process.argv);
