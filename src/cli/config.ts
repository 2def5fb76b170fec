/** `bastion config check FILE` (dry run: validate and exit) and `bastion config schema`. */
import type { Command } from 'commander';
import { configJsonSchema, loadConfigFile } from '../index.js';

export function register(program: Command): void {
  const cmd = program.command('config').description('Configuration tools');
  cmd
    .command('check')
    .description('Validate a configuration file and exit (0 valid, 2 invalid)')
    .argument('<file>', 'configuration file (YAML)')
    .action((file: string) => {
      try {
        const loaded = loadConfigFile(file);
        const names = Object.keys(loaded.config.servers);
        process.stdout.write(`${loaded.file}: valid (${names.length} server${names.length === 1 ? '' : 's'}: ${names.join(', ') || 'none'})\n`);
      } catch (err) {
        process.stderr.write(`${(err as Error).message}\n`);
        process.exitCode = 2;
      }
    });
  cmd
    .command('schema')
    .description('Print the JSON Schema of the configuration')
    .action(() => {
      process.stdout.write(JSON.stringify(configJsonSchema(), null, 2) + '\n');
    });
}
