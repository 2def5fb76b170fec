/**
 * `bastion revoke --config FILE --token T|--jti J|--subject S|--client C|--cert THUMBPRINT`:
 * put a token or a principal on the deny-list of every replica (through the admin API). With
 * `--token` the authorization server's RFC 7009 endpoint is also called when one is configured
 * (admin.tokenRevocation). `--token -` reads the token from standard input, so it stays out of
 * the shell history and the process list.
 */
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { adminClient, report } from '../admin/client.js';

interface RevokeOptions {
  config: string;
  token?: string;
  jti?: string;
  subject?: string;
  client?: string;
  cert?: string;
  issuer?: string;
  reason?: string;
  ttl?: string;
  clientCert?: string;
  clientKey?: string;
  ca?: string;
}

export const io = {
  out: (s: string): void => void process.stdout.write(s),
  err: (s: string): void => void process.stderr.write(s),
  stdin: (): string => readFileSync(0, 'utf8'),
};

export function addAdminOptions(cmd: Command): Command {
  return cmd
    .requiredOption('-c, --config <file>', 'gateway configuration file (the admin listener is found from admin.listen)')
    .option('--client-cert <file>', 'PEM client certificate, for an admin listener that requires mTLS')
    .option('--client-key <file>', 'PEM key of --client-cert')
    .option('--ca <file>', 'PEM CA of the admin server certificate (default: admin.tls.cert)');
}

export function register(program: Command): void {
  addAdminOptions(program.command('revoke').description('Revoke a token, a subject, a client or a client certificate on every replica'))
    .option('--token <token>', 'the access token itself ("-": read it from stdin); only its SHA-256 is kept')
    .option('--jti <id>', 'token id (jti claim)')
    .option('--subject <sub>', 'subject (sub claim, certificate or API key identity): every token of it')
    .option('--client <id>', 'OAuth client id: every token issued to it')
    .option('--cert <thumbprint>', 'client certificate SHA-256 thumbprint (x5t#S256, base64url)')
    .option('--issuer <url>', 'issuer of an opaque --token (for the RFC 7009 call)')
    .option('--reason <text>', 'why (recorded in the audit trail)')
    .option('--ttl <seconds>', 'drop the entry after this many seconds (default: never; for a JWT --token, its expiry)')
    .action(async (o: RevokeOptions) => {
      const given = (['token', 'jti', 'subject', 'client', 'cert'] as const).filter((k) => o[k] !== undefined);
      if (given.length !== 1) {
        io.err('bastion revoke: give exactly one of --token, --jti, --subject, --client, --cert\n');
        process.exitCode = 2;
        return;
      }
      const kind = given[0]!;
      let value = o[kind]!;
      if (kind === 'token' && value === '-') value = io.stdin().trim();
      const body: Record<string, unknown> = { [kind]: value };
      if (o.issuer) body.issuer = o.issuer;
      if (o.reason) body.reason = o.reason;
      if (o.ttl !== undefined) body.ttlSeconds = Number(o.ttl);
      const call = adminClient(o);
      report(await call('POST', '/revoke', body), io.out, io.err);
    });
}
