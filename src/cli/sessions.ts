/**
 * `bastion sessions list --config FILE` and `bastion sessions end --config FILE --id ID |
 * --subject S [--client C] [--issuer I]`: see and end downstream sessions on every replica.
 */
import type { Command } from 'commander';
import { adminClient, report } from '../admin/client.js';
import { addAdminOptions, io } from './revoke.js';

interface Opts {
  config: string;
  id?: string;
  subject?: string;
  client?: string;
  issuer?: string;
  clientCert?: string;
  clientKey?: string;
  ca?: string;
}

export function register(program: Command): void {
  const cmd = program.command('sessions').description('List or end downstream sessions on every replica');
  addAdminOptions(cmd.command('list').description('List the sessions of every replica')).action(async (o: Opts) => {
    report(await adminClient(o)('GET', '/sessions'), io.out, io.err);
  });
  addAdminOptions(cmd.command('end').description('End sessions by id, or all sessions of a subject / client'))
    .option('--id <session>', 'session id (Mcp-Session-Id)')
    .option('--subject <sub>', 'every session of this subject')
    .option('--client <id>', 'every session of this OAuth client')
    .option('--issuer <url>', 'only sessions whose token came from this issuer')
    .action(async (o: Opts) => {
      if (!o.id && !o.subject && !o.client) {
        io.err('bastion sessions end: give --id, or --subject and/or --client\n');
        process.exitCode = 2;
        return;
      }
      const call = adminClient(o);
      if (o.id && !o.subject && !o.client && !o.issuer) {
        report(await call('DELETE', `/sessions/${encodeURIComponent(o.id)}`), io.out, io.err);
        return;
      }
      const q = new URLSearchParams();
      for (const k of ['id', 'subject', 'client', 'issuer'] as const) if (o[k]) q.set(k, o[k]!);
      report(await call('DELETE', `/sessions?${q.toString()}`), io.out, io.err);
    });
}
