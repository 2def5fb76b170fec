/**
 * `bastion pin list | diff | approve NAME… | revoke NAME…`: manage the approved definitions in
 * the lockfile beside the config (`--config FILE`; `integrity.lockfile` can move it).
 *
 * `diff` and `approve` compare against live definitions given with `--from FILE` (a tools/list
 * result, an array of tools, or pending definitions exported from the gateway's state store,
 * key contract INTEGRITY_KEYS in src/integrity/types.ts). A running gateway re-reads the
 * lockfile when it changes, so an approval takes effect without a restart.
 */
import { readFile } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import type { Command } from 'commander';
import { loadConfigFile } from '../config/load.js';
import { definitionHash, identityOf } from '../integrity/canonical.js';
import { diffDefinitions } from '../integrity/decide.js';
import { parseDefinitions, type DefinitionSet } from '../integrity/definitions.js';
import { lockfilePathFor, readLockfile, withoutPins, withPins, writeLockfile } from '../integrity/lockfile.js';
import { scanDefinition } from '../integrity/scan.js';
import { DEFINITION_KINDS, pinKey, type DefinitionKind, type Lockfile, type Pin, type RawDefinition } from '../integrity/types.js';

/** Where the command writes (tests replace it to capture output in-process). */
export const io = {
  out: (s: string): boolean => process.stdout.write(s),
  err: (s: string): boolean => process.stderr.write(s),
};

export interface PinContext {
  lockPath: string;
  servers: string[] | undefined;
}

/** Lockfile path and known servers from the config; a config that does not load still locates the lockfile. */
export function pinContext(configFile: string): PinContext {
  try {
    const { config } = loadConfigFile(configFile);
    const configured = (config as { integrity?: { lockfile?: string } }).integrity?.lockfile;
    return { lockPath: lockfilePathFor(configFile, configured), servers: Object.keys(config.servers) };
  } catch (err) {
    io.err(`bastion pin: warning: ${(err as Error).message.split('\n')[0]} (using ${lockfilePathFor(configFile)})\n`);
    return { lockPath: lockfilePathFor(configFile), servers: undefined };
  }
}

function kindOf(k: string | undefined): DefinitionKind {
  const kind = (k ?? 'tool') as DefinitionKind;
  if (!DEFINITION_KINDS.includes(kind)) throw new Error(`--kind must be one of ${DEFINITION_KINDS.join(', ')}`);
  return kind;
}

function checkServer(ctx: PinContext, server: string): void {
  if (ctx.servers && !ctx.servers.includes(server)) throw new Error(`server "${server}" is not in the configuration (servers: ${ctx.servers.join(', ') || 'none'})`);
}

async function readDefinitions(file: string): Promise<DefinitionSet> {
  let doc: unknown;
  try {
    doc = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read definitions from ${file}: ${(err as Error).message}`, { cause: err });
  }
  const set = parseDefinitions(doc);
  if (typeof set === 'string') throw new Error(`${file}: ${set}`);
  return set;
}

export function operator(): string {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return `operator@${hostname()}`;
  }
}

export type DiffStatus = 'approved' | 'new' | 'changed' | 'removed';
export interface DiffEntry {
  kind: DefinitionKind;
  name: string;
  status: DiffStatus;
  hash?: string | undefined;
  pinnedHash?: string | undefined;
  diff?: string | undefined;
}

/** Compare live definitions against the pins of a server (pure). */
export function comparePins(lock: Lockfile, server: string, live: DefinitionSet, names: readonly string[], kind?: DefinitionKind): DiffEntry[] {
  const pins = lock.servers[server]?.pins ?? {};
  const out: DiffEntry[] = [];
  const seen = new Set<string>();
  for (const k of kind ? [kind] : DEFINITION_KINDS) {
    for (const d of live[k]) {
      if (typeof d.name !== 'string' || (names.length > 0 && !names.includes(d.name))) continue;
      const key = pinKey(k, d.name);
      seen.add(key);
      const hash = definitionHash(k, d);
      const pin = pins[key];
      if (!pin) out.push({ kind: k, name: d.name, status: 'new', hash, diff: diffDefinitions({}, identityOf(k, d)) });
      else if (pin.hash === hash) out.push({ kind: k, name: d.name, status: 'approved', hash, pinnedHash: pin.hash });
      else out.push({ kind: k, name: d.name, status: 'changed', hash, pinnedHash: pin.hash, diff: diffDefinitions(pin.definition, identityOf(k, d)) });
    }
  }
  for (const [key, p] of Object.entries(pins)) {
    if (seen.has(key) || (kind && p.kind !== kind) || (names.length > 0 && !names.includes(p.name))) continue;
    // Only report pins of the kinds the live document lists.
    if (live[p.kind].length === 0) continue;
    out.push({ kind: p.kind, name: p.name, status: 'removed', pinnedHash: p.hash });
  }
  return out;
}

export interface ApproveResult {
  lock: Lockfile;
  approved: Pin[];
  refused: Array<{ name: string; why: string }>;
}

/** Pin the named live definitions (pure). Definitions the scan blocks need `acceptFindings`. */
export function approvePins(
  lock: Lockfile,
  server: string,
  live: DefinitionSet,
  names: readonly string[],
  opts: { kind: DefinitionKind; all: boolean; by: string; at: Date; acceptFindings: boolean },
): ApproveResult {
  const approved: Pin[] = [];
  const refused: ApproveResult['refused'] = [];
  const byName = new Map<string, RawDefinition>();
  for (const d of live[opts.kind]) if (typeof d.name === 'string') byName.set(d.name, d);
  const wanted = opts.all ? [...byName.keys()] : names;
  for (const name of wanted) {
    const d = byName.get(name);
    if (!d) {
      refused.push({ name, why: `no ${opts.kind} named "${name}" in the definitions file` });
      continue;
    }
    const scan = scanDefinition(opts.kind, d, { server });
    if (scan.verdict === 'block' && !opts.acceptFindings) {
      refused.push({ name, why: `the poisoning scan blocks it (${scan.findings.map((f) => f.rule).join(', ')}); review with \`bastion scan tools\` and re-run with --accept-findings to approve anyway` });
      continue;
    }
    approved.push({ kind: opts.kind, name, hash: definitionHash(opts.kind, d), definition: identityOf(opts.kind, d), approvedAt: opts.at.toISOString(), approvedBy: opts.by });
  }
  return { lock: approved.length > 0 ? withPins(lock, server, approved) : lock, approved, refused };
}

export function register(program: Command): void {
  const pin = program.command('pin').description('manage approved (pinned) tool, prompt and resource-template definitions in bastion.lock.json');

  pin
    .command('list')
    .description('list pinned definitions')
    .requiredOption('--config <file>', 'gateway configuration file (the lockfile sits beside it)')
    .option('--server <name>', 'only this server')
    .option('--json', 'print JSON')
    .action(async (opts: { config: string; server?: string; json?: boolean }) => {
      const ctx = pinContext(opts.config);
      const lock = await readLockfile(ctx.lockPath);
      const rows: Array<Pin & { server: string }> = [];
      for (const [server, s] of Object.entries(lock.servers)) {
        if (opts.server && server !== opts.server) continue;
        for (const p of Object.values(s.pins)) rows.push({ server, ...p });
      }
      if (opts.json) {
        io.out(`${JSON.stringify(rows.map(({ definition: _d, ...r }) => r), null, 2)}\n`);
        return;
      }
      if (rows.length === 0) {
        io.out(`no pins in ${ctx.lockPath}\n`);
        return;
      }
      for (const r of rows) io.out(`${r.server}\t${r.kind}\t${r.name}\t${r.hash.slice(0, 19)}…\t${r.approvedAt}\t${r.approvedBy}\n`);
    });

  pin
    .command('diff')
    .description('show how live definitions differ from their pins')
    .argument('[names...]', 'definition names (default: all)')
    .requiredOption('--config <file>', 'gateway configuration file')
    .requiredOption('--server <name>', 'server the definitions belong to')
    .requiredOption('--from <file>', 'live definitions: a tools/list result, an array of tools, or exported pending definitions')
    .option('--kind <kind>', 'tool, prompt or resourceTemplate (default: all kinds in the file)')
    .option('--json', 'print JSON')
    .action(async (names: string[], opts: { config: string; server: string; from: string; kind?: string; json?: boolean }) => {
      const ctx = pinContext(opts.config);
      checkServer(ctx, opts.server);
      const entries = comparePins(await readLockfile(ctx.lockPath), opts.server, await readDefinitions(opts.from), names, opts.kind ? kindOf(opts.kind) : undefined);
      if (opts.json) {
        io.out(`${JSON.stringify(entries, null, 2)}\n`);
        return;
      }
      for (const e of entries) {
        io.out(`${e.status.toUpperCase().padEnd(8)} ${e.kind} ${e.name}\n`);
        if (e.diff && e.status === 'changed') io.out(`${e.diff.replace(/^/gm, '    ')}\n`);
      }
      const pending = entries.filter((e) => e.status === 'new' || e.status === 'changed').map((e) => e.name);
      if (pending.length > 0) io.out(`\nto approve: bastion pin approve --config ${opts.config} --server ${opts.server} --from ${opts.from} ${pending.join(' ')}\n`);
    });

  pin
    .command('approve')
    .description('pin the given live definitions (a running gateway picks the change up without restart)')
    .argument('[names...]', 'definition names')
    .requiredOption('--config <file>', 'gateway configuration file')
    .requiredOption('--server <name>', 'server the definitions belong to')
    .requiredOption('--from <file>', 'live definitions: a tools/list result, an array of tools, or exported pending definitions')
    .option('--kind <kind>', 'tool, prompt or resourceTemplate', 'tool')
    .option('--all', 'approve every definition of that kind in the file')
    .option('--by <who>', 'who approves (default: user@host)')
    .option('--accept-findings', 'approve even when the poisoning scan blocks the definition (after review)')
    .action(async (names: string[], opts: { config: string; server: string; from: string; kind: string; all?: boolean; by?: string; acceptFindings?: boolean }) => {
      if (names.length === 0 && !opts.all) throw new Error('name the definitions to approve, or pass --all');
      const ctx = pinContext(opts.config);
      checkServer(ctx, opts.server);
      const r = approvePins(await readLockfile(ctx.lockPath), opts.server, await readDefinitions(opts.from), names, {
        kind: kindOf(opts.kind),
        all: opts.all ?? false,
        by: opts.by ?? operator(),
        at: new Date(),
        acceptFindings: opts.acceptFindings ?? false,
      });
      if (r.approved.length > 0) await writeLockfile(ctx.lockPath, r.lock);
      for (const p of r.approved) io.out(`approved ${p.kind} ${p.name} ${p.hash}\n`);
      for (const f of r.refused) io.err(`not approved: ${f.name}: ${f.why}\n`);
      if (r.refused.length > 0) process.exitCode = 1;
    });

  pin
    .command('revoke')
    .description('remove pins (the definitions are held back again)')
    .argument('<names...>', 'definition names')
    .requiredOption('--config <file>', 'gateway configuration file')
    .requiredOption('--server <name>', 'server the definitions belong to')
    .option('--kind <kind>', 'tool, prompt or resourceTemplate', 'tool')
    .action(async (names: string[], opts: { config: string; server: string; kind: string }) => {
      const ctx = pinContext(opts.config);
      const kind = kindOf(opts.kind);
      const lock = await readLockfile(ctx.lockPath);
      const missing = names.filter((n) => !lock.servers[opts.server]?.pins[pinKey(kind, n)]);
      await writeLockfile(ctx.lockPath, withoutPins(lock, opts.server, names.map((name) => ({ kind, name }))));
      for (const n of names) if (!missing.includes(n)) io.out(`revoked ${kind} ${n}\n`);
      for (const n of missing) io.err(`not pinned: ${kind} ${n}\n`);
      if (missing.length > 0) process.exitCode = 1;
    });
}
