#!/usr/bin/env node
import { Command, Option } from 'commander';
import { ConfigError, loadConfig, type Config } from './config/load.js';
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
  .action(() => {
    const config = load();
    process.stdout.write(`configuration OK (${config.source}): ${Object.keys(config.upstreams).length} upstream(s), ${config.routes.length} route(s)\n`);
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

await program.parseAsync(process.argv);
