#!/usr/bin/env node
/**
 * The `bastion` command. One thin file per command beside this one, each exporting
 * `register(program)`; they import the public API, and nothing imports cli/.
 * To add a command: import its register function below and add it to COMMANDS.
 */
import { Command } from 'commander';
import { register as registerToken } from './token.js';
import { register as registerScanTools } from './scan-tools.js';
import { register as registerScanText } from './scan-text.js';
import { register as registerScanServer } from './scan-server.js';
import { register as registerPin } from './pin.js';
import { register as registerManifest } from './manifest.js';
import { register as registerServe } from './serve.js';
import { register as registerConfig } from './config.js';
import { register as registerDev } from './dev.js';
import { register as registerAudit } from './audit.js';
import { register as registerRevoke } from './revoke.js';
import { register as registerSessions } from './sessions.js';
import { register as registerQuarantine } from './quarantine.js';

type Register = (program: Command) => void;

const COMMANDS: Register[] = [
  // commands register here, one line each
  registerServe,
  registerDev,
  registerConfig,
  registerToken,
  registerScanTools,
  registerScanText,
  registerScanServer,
  registerPin,
  registerManifest,
  registerAudit,
  registerRevoke,
  registerSessions,
  registerQuarantine,
];

export async function main(argv: string[]): Promise<void> {
  const program = new Command();
  program
    .name('bastion')
    .description('mcp-bastion: a security gateway for Model Context Protocol servers')
    .version('0.1.0')
    .showHelpAfterError();
  for (const register of COMMANDS) register(program);
  await program.parseAsync(argv);
}

main(process.argv).catch((err: unknown) => {
  const e = err as { code?: string; message?: string };
  process.stderr.write(`bastion: ${e.message ?? String(err)}${e.code ? ` (${e.code})` : ''}\n`);
  process.exit(typeof process.exitCode === 'number' && process.exitCode !== 0 ? process.exitCode : 1);
});
