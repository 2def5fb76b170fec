/**
 * `bastion serve --config FILE`: run the gateway. SIGTERM/SIGINT drain in-flight requests
 * (up to transport.shutdownGraceMs), close upstreams, then exit.
 */
import type { Command } from 'commander';
import { loadConfigFile, startGatewayFromConfig } from '../index.js';

export function register(program: Command): void {
  program
    .command('serve')
    .description('Run the gateway with a configuration file')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .action(async (opts: { config: string }) => {
      const loaded = loadConfigFile(opts.config);
      const gw = await startGatewayFromConfig(loaded);
      process.stderr.write(`bastion: listening on ${gw.url} (${[...gw.mounts.keys()].map((n) => `/mcp/${n}`).join(', ')})\n`);
      installShutdown(gw.close);
    });
}

export function installShutdown(close: () => Promise<void>): void {
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`bastion: ${signal} received, draining\n`);
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`bastion: shutdown error: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
