/**
 * `bastion quarantine --config FILE --server NAME [--tool TOOL]` takes a tool (or a whole
 * server) offline on every replica: hidden from lists, calls refused. `bastion release` with
 * the same arguments brings it back.
 */
import type { Command } from 'commander';
import { adminClient, report } from '../admin/client.js';
import { addAdminOptions, io } from './revoke.js';

interface Opts {
  config: string;
  server: string;
  tool?: string;
  reason?: string;
  clientCert?: string;
  clientKey?: string;
  ca?: string;
}

export function register(program: Command): void {
  addAdminOptions(program.command('quarantine').description('Take a tool (or a whole server) offline on every replica'))
    .requiredOption('--server <name>', 'server name (/mcp/NAME)')
    .option('--tool <name>', 'tool name (default: the whole server)')
    .option('--reason <text>', 'why (recorded in the audit trail)')
    .action(async (o: Opts) => {
      const body = { server: o.server, ...(o.tool ? { tool: o.tool } : {}), ...(o.reason ? { reason: o.reason } : {}) };
      report(await adminClient(o)('POST', '/quarantine', body), io.out, io.err);
    });
  addAdminOptions(program.command('release').description('Release a quarantined tool (or server) on every replica'))
    .requiredOption('--server <name>', 'server name (/mcp/NAME)')
    .option('--tool <name>', 'tool name (default: the whole-server quarantine)')
    .action(async (o: Opts) => {
      report(await adminClient(o)('POST', '/release', { server: o.server, ...(o.tool ? { tool: o.tool } : {}) }), io.out, io.err);
    });
}
