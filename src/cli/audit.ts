/**
 * `bastion audit verify FILE [--key PUB] [--allow-open] [--json]`: check a hash-chained audit
 * file. Exit 0 with a summary when intact; 1 naming the first bad record (line and seq) when a
 * record was edited, removed, swapped or the file truncated; 2 when the command itself cannot run.
 *
 * `bastion audit keygen --out FILE`: make an Ed25519 checkpoint key (private PEM, mode 0600) and
 * its public key beside it (FILE.pub), for `audit.sinks[].checkpoint.keyFile` and `--key`.
 *
 * `bastion audit catalog`: print the event catalog (docs/events.md).
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { verifyAuditFile, type VerifyResult } from '../audit/verify.js';
import { keyIdOf, loadVerifyKey } from '../audit/chain.js';
import { renderEventsMarkdown } from '../audit/events.js';

export interface VerifyCliOptions {
  key?: string;
  allowOpen?: boolean;
  json?: boolean;
}

export interface CliResult {
  exitCode: number;
  output: string;
}

function summary(file: string, r: VerifyResult): string {
  const lines: string[] = [];
  if (r.ok) {
    lines.push(`OK ${file}: ${r.events} events, ${r.checkpoints} checkpoints (${r.signedCheckpoints} signed), last seq ${r.lastSeq}`);
    lines.push(`  chain intact${r.signaturesChecked ? ', every checkpoint signature valid' : ''}${r.sealed ? ', sealed by a final checkpoint' : ''}`);
    lines.push(`  last hash ${r.lastHash}`);
  } else {
    const p = r.problem!;
    lines.push(`FAILED ${file}: ${p.message}`);
    if (p.line > 0) lines.push(`  first bad record: line ${p.line}${p.seq !== undefined ? `, seq ${p.seq}` : ''} (${p.kind})`);
    lines.push(`  ${r.records} record(s) before it verified`);
  }
  for (const w of r.warnings) lines.push(`  warning: ${w}`);
  return `${lines.join('\n')}\n`;
}

export async function runAuditVerify(file: string, opts: VerifyCliOptions = {}): Promise<CliResult> {
  let publicKey;
  if (opts.key !== undefined) {
    try {
      publicKey = loadVerifyKey(opts.key);
    } catch (err) {
      return { exitCode: 2, output: `bastion audit verify: ${(err as Error).message}\n` };
    }
  }
  const r = await verifyAuditFile(file, { publicKey, allowOpen: opts.allowOpen === true });
  if (r.problem?.kind === 'unreadable') return { exitCode: 2, output: `bastion audit verify: ${r.problem.message}\n` };
  const output = opts.json ? `${JSON.stringify({ file, ...r }, null, 2)}\n` : summary(file, r);
  return { exitCode: r.ok ? 0 : 1, output };
}

export function runAuditKeygen(out: string, force = false): CliResult {
  const pub = `${out}.pub`;
  if (!force && (existsSync(out) || existsSync(pub))) {
    return { exitCode: 2, output: `bastion audit keygen: ${existsSync(out) ? out : pub} exists; pass --force to overwrite it\n` };
  }
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  writeFileSync(out, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o644 });
  return {
    exitCode: 0,
    output: `wrote ${out} (private, keep it on the gateway: audit.sinks[].checkpoint.keyFile)\nwrote ${pub} (public, for \`bastion audit verify FILE --key ${pub}\`)\nkey id ${keyIdOf(publicKey)}\n`,
  };
}

export function register(program: Command): void {
  const audit = program.command('audit').description('Audit trail tools: verify a hash-chained file, make a checkpoint key, print the event catalog');
  audit
    .command('verify')
    .description('Check a hash-chained audit file; exit 0 when intact, 1 naming the first bad record')
    .argument('<file>', 'audit file written by a `file` sink')
    .option('--key <pub>', 'Ed25519 public key (PEM) that signed the checkpoints; every checkpoint must verify')
    .option('--allow-open', 'accept a file that does not end with a final checkpoint (the gateway is still writing it)')
    .option('--json', 'print the result as JSON')
    .action(async (file: string, opts: VerifyCliOptions) => {
      const r = await runAuditVerify(file, opts);
      (r.exitCode === 2 ? process.stderr : process.stdout).write(r.output);
      process.exitCode = r.exitCode;
    });
  audit
    .command('keygen')
    .description('Make an Ed25519 key pair for signed audit checkpoints')
    .requiredOption('--out <file>', 'private key file to write (the public key goes to FILE.pub)')
    .option('--force', 'overwrite existing files')
    .action((opts: { out: string; force?: boolean }) => {
      const r = runAuditKeygen(opts.out, opts.force === true);
      (r.exitCode === 0 ? process.stdout : process.stderr).write(r.output);
      process.exitCode = r.exitCode;
    });
  audit
    .command('catalog')
    .description('Print the audit event catalog as Markdown (docs/events.md)')
    .action(() => {
      process.stdout.write(renderEventsMarkdown());
    });
}
