#!/usr/bin/env node
import { Command, Option } from 'commander';
import { warmCli } from './admin/cli.js';
import { checkOssBucket, ossEndpointOf } from './cache/oss-bucket-check.js';
import { exportCli, importCli } from './cli/bundle.js';
import { gcCommand } from './cli/gc.js';
import { healthcheck } from './cli/healthcheck.js';
import { mirrorUrl } from './cli/mirror-url.js';
import { dataDirProblem } from './config/data-dir.js';
import { type Config, ConfigError, loadConfig, loadListeners, type LoadOptions } from './config/load.js';
import { parseDuration } from './config/units.js';
import { createLogger } from './observability/logger.js';
import { StartupError, startServer } from './server.js';

const program = new Command()
  .name('acr-mirror')
  .description('Pull-through caching mirror for Alibaba Cloud Container Registry')
  .addOption(new Option('-c, --config <path>', 'configuration file (default: $ACR_MIRROR_CONFIG, else ./config.toml, else built-in defaults)'))
  .showHelpAfterError()
  // commander's own usage errors (a missing required option or argument, an unknown option) exit 2 like ours
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));

program
  .command('serve', { isDefault: true })
  .description('serve the registry API')
  .option('--listen <host:port>', 'override server.listen')
  .action(async (opts: { listen?: string }) => {
    const config = load();
    if (opts.listen) config.server.listen = opts.listen;
    const log = createLogger(config.log.level);
    await checkBucket(config, (message) => log.warn({ problem: message }, 'OSS bucket not answering at start-up: serving from the local disk and the upstreams until it does'));
    const server = await startServer(config, log).catch(startupFailed);
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
    const dirProblem = dataDirProblem(config.storage.dir);
    if (dirProblem) exitWithProblem(dirProblem);
    await checkBucket(config, exitWithProblem);
    const bucket = config.storage.oss ? `, OSS bucket ${config.storage.oss.bucket} at ${ossEndpointOf(config.storage.oss)} answers` : '';
    process.stdout.write(`configuration OK (${config.source}): ${Object.keys(config.upstreams).length} upstream(s), ${config.routes.length} route(s)${bucket}\n`);
  });

program
  .command('gc')
  .description('remove unreferenced cache entries and stale temp files, and print what was freed')
  .option('--dry-run', 'only print what would be freed (exactly what a run now would free; changes nothing)')
  .option('-v, --verbose', 'list every manifest, referrers list, blob and temp file freed')
  .option('--grace <duration>', 'keep what was used within this long (default: storage.gc_grace)')
  .action(async (opts: { dryRun?: boolean; verbose?: boolean; grace?: string }) => {
    const config = load();
    const graceMs = opts.grace === undefined ? undefined : parseDuration(opts.grace);
    if (graceMs === null) {
      process.stderr.write(`acr-mirror: --grace: invalid duration "${opts.grace}" (use e.g. 30m, 24h, 7d)\n`);
      process.exit(2);
    }
    await gcCommand(config, { dryRun: opts.dryRun === true, verbose: opts.verbose === true, ...(graceMs !== undefined ? { graceMs } : {}), out: process.stdout });
  });

program
  .command('export')
  .description('write images from a running mirror (fetching what is missing) to an OCI layout tar, for an air gap')
  .argument('<refs...>', 'image references as clients name them, e.g. team/app:1.2')
  .requiredOption('-o, --output <file>', 'the bundle to write')
  .option('--platform <platform>', 'all (default), or os/arch[/variant]; repeat or comma-separate', (p: string, all: string[] = []) => [...all, p])
  .option('--referrers', 'also the referrers of every image (signatures, SBOMs), for verification behind the air gap')
  .addOption(urlOption())
  .addOption(new Option('--token <token>', 'admin token (prefer the environment variable)').env('ACR_MIRROR_ADMIN_TOKEN'))
  .action(async (refs: string[], opts: { output: string; platform?: string[]; referrers?: boolean; url?: string; token?: string }) => {
    process.exitCode = await exportCli({ ...opts, url: mirror(opts.url), refs, platforms: opts.platform ?? [], stderr: process.stderr, stdout: process.stdout });
  });

program
  .command('import')
  .description('add the images of a bundle to a running mirror (every digest is verified first)')
  .argument('<file>', 'a bundle written by acr-mirror export (or skopeo copy to oci-archive:)')
  .option('--name <repository>', 'a repository the bundle may add images to (required: others are refused); repeat or comma-separate', (n: string, all: string[] = []) => [...all, n])
  .option('--names-from <file>', 'read such repositories from a file, one a line (# comments)')
  .option('--replace', 'allow moving a tag the mirror already has to another digest')
  .option('--expect-digest <digest>', 'refuse the bundle unless its index.json has this digest (as export printed it)')
  .addOption(urlOption())
  .addOption(new Option('--token <token>', 'admin token (prefer the environment variable)').env('ACR_MIRROR_ADMIN_TOKEN'))
  .action(async (file: string, opts: { name?: string[]; namesFrom?: string; replace?: boolean; expectDigest?: string; url?: string; token?: string }) => {
    const { name, replace, ...rest } = opts;
    process.exitCode = await importCli({ ...rest, url: mirror(rest.url), file, names: name ?? [], replace: replace === true, stderr: process.stderr, stdout: process.stdout });
  });

program
  .command('warm')
  .description("cache images on a running mirror ahead of time (through its admin API), with live progress")
  .argument('[refs...]', 'image references as clients name them, e.g. team/app:1.2 or library/nginx@sha256:...')
  .option('--platform <platform>', 'all (default), or os/arch[/variant] like linux/arm64; repeat or comma-separate', (p: string, all: string[] = []) => [...all, p])
  .option('-f, --file <path>', 'read references from a file, one per line (# comments)')
  .option('--referrers', 'also the referrers of every image (signatures, SBOMs) with their blobs')
  .addOption(urlOption())
  .addOption(new Option('--token <token>', 'admin token (prefer the environment variable)').env('ACR_MIRROR_ADMIN_TOKEN'))
  .addHelpText('after', '\nExit status: 0 every image warmed, 1 some image failed, 2 the warm could not be started or followed.')
  .action(async (refs: string[], opts: { platform?: string[]; file?: string; referrers?: boolean; url?: string; token?: string }) => {
    process.exitCode = await warmCli({
      url: mirror(opts.url),
      token: opts.token,
      refs,
      ...(opts.file ? { file: opts.file } : {}),
      ...(opts.platform ? { platforms: opts.platform } : {}),
      ...(opts.referrers ? { referrers: true } : {}),
      stderr: process.stderr,
      stdout: process.stdout,
    });
  });

program
  .command('healthcheck')
  .description("exit 0 when the running mirror answers /healthz, else 1 (the container image's HEALTHCHECK)")
  .addOption(urlOption())
  .action(async (opts: { url?: string }) => {
    // Docker reserves a HEALTHCHECK's exit code 2: a configuration error is unhealthy (1) too
    process.exitCode = await healthcheck(mirror(opts.url, 1), process.stderr);
  });

function urlOption(): Option {
  return new Option('--url <url>', 'the mirror (default: the listen address of the configuration)').env('ACR_MIRROR_URL');
}

/** The mirror a command talks to: --url or $ACR_MIRROR_URL, else where the configuration says it listens. */
function mirror(url: string | undefined, configErrorExit = 2): string {
  return url ?? loading((opts) => mirrorUrl(loadListeners(opts)), configErrorExit);
}

function load() {
  return loading(loadConfig);
}

/** Loads (part of) the configuration named by --config; a configuration error ends the process (exit code 2 unless told). */
function loading<T>(loader: (opts: LoadOptions) => T, configErrorExit = 2): T {
  try {
    return loader({ ...(program.opts().config ? { path: program.opts().config as string } : {}) });
  } catch (err) {
    if (err instanceof ConfigError) exitWithProblem(err.message, configErrorExit);
    throw err;
  }
}

/** A start-up problem the operator can fix (data directory, listen address): one line, no stack trace. */
function startupFailed(err: unknown): never {
  if (err instanceof StartupError) exitWithProblem(err.message);
  throw err;
}

function exitWithProblem(message: string, exitCode = 2): never {
  process.stderr.write(`acr-mirror: ${message}\n`);
  process.exit(exitCode);
}

/**
 * With storage.backend = "oss": a bucket that refuses the configured credentials (or does not exist) is a
 * configuration error, exit 2 saying why; one that does not answer is handed to `unanswered`.
 */
async function checkBucket(config: Config, unanswered: (message: string) => void): Promise<void> {
  const problem = config.storage.oss ? await checkOssBucket(config.storage.oss) : null;
  if (problem?.refused) exitWithProblem(problem.message);
  if (problem) unanswered(problem.message);
}

await program.parseAsync(process.argv);
