/**
 * `bastion scan tools FILE|-`: the poisoning scanner, offline, on a JSON array of tool
 * definitions or a `tools/list` result. `--format json` prints exactly
 * {"tools":[{"name","verdict","findings":[{"rule","severity","message","evidence"}]}]}
 * (the evidence starts with where the finding is, e.g. `inputSchema.properties.x.description: …`).
 * Exit code 0 whatever the verdicts, unless `--fail-on block|warn` (then 1 when a tool reaches
 * that verdict); 2 when the input cannot be read.
 */
import { readFile } from 'node:fs/promises';
import { text as readAll } from 'node:stream/consumers';
import type { Command } from 'commander';
import { parseDefinitions } from '../integrity/definitions.js';
import { scanTools } from '../integrity/scan.js';
import type { KnownTool, ScanResult } from '../integrity/types.js';

export interface ScanToolsOptions {
  format?: 'json' | 'text';
  failOn?: 'block' | 'warn' | 'never';
  /** Tools of other servers for the cross-server checks. */
  known?: KnownTool[];
  server?: string;
  color?: boolean;
}

export interface ScanToolsOutput {
  output: string;
  exitCode: number;
  results: ScanResult[];
}

function readInput(file: string): Promise<string> {
  return file === '-' ? readAll(process.stdin) : readFile(file, 'utf8');
}

/** `--known FILE` read and parsed; a failure names the flag, the file and what was wrong. */
async function readKnown(file: string): Promise<KnownTool[]> {
  let doc: unknown;
  try {
    doc = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`--known ${file}: ${code ? `cannot read it (${code})` : `not JSON (${(err as Error).message})`}`, { cause: err });
  }
  const k = parseKnown(doc);
  if (typeof k === 'string') throw new Error(`--known ${file}: ${k}`);
  return k;
}

/** `--known FILE`: `[{server, name, description}]`, or `{SERVER: tools[] | tools/list result}`. */
export function parseKnown(doc: unknown): KnownTool[] | string {
  if (Array.isArray(doc)) {
    const out: KnownTool[] = [];
    for (const t of doc as Array<Record<string, unknown>>) {
      if (t === null || typeof t !== 'object' || typeof t.server !== 'string' || typeof t.name !== 'string') return 'each known tool needs "server" and "name"';
      out.push({ server: t.server, name: t.name, description: typeof t.description === 'string' ? t.description : undefined });
    }
    return out;
  }
  if (doc !== null && typeof doc === 'object') {
    const out: KnownTool[] = [];
    for (const [server, v] of Object.entries(doc as Record<string, unknown>)) {
      const set = parseDefinitions(v);
      if (typeof set === 'string') return `${server}: ${set}`;
      for (const t of set.tool) if (typeof t.name === 'string') out.push({ server, name: t.name, description: typeof t.description === 'string' ? t.description : undefined });
    }
    return out;
  }
  return 'expected an array of {server, name, description} or an object of server name → tools';
}

const ORDER = { block: 2, warn: 1, pass: 0 } as const;

export function runScanTools(text: string, opts: ScanToolsOptions = {}): ScanToolsOutput {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return { output: `bastion scan tools: input is not JSON (${(err as Error).message})\n`, exitCode: 2, results: [] };
  }
  const set = parseDefinitions(doc);
  if (typeof set === 'string') return { output: `bastion scan tools: ${set}\n`, exitCode: 2, results: [] };
  const results = scanTools(set.tool, { known: opts.known, server: opts.server ?? '(scanned)' });
  const worst = results.reduce((m, r) => Math.max(m, ORDER[r.verdict]), 0);
  const failOn = opts.failOn ?? 'never';
  const exitCode = failOn !== 'never' && worst >= ORDER[failOn] ? 1 : 0;
  if (opts.format === 'json') {
    const body = {
      tools: results.map((r) => ({
        name: r.name,
        verdict: r.verdict,
        findings: r.findings.map((f) => ({ rule: f.rule, severity: f.severity, message: f.message, evidence: f.path ? `${f.path}: ${f.evidence}` : f.evidence })),
      })),
    };
    return { output: `${JSON.stringify(body)}\n`, exitCode, results };
  }
  return { output: formatText(results, opts.color ?? false), exitCode, results };
}

function formatText(results: readonly ScanResult[], color: boolean): string {
  const paint = (code: string, s: string): string => (color ? `\u001b[${code}m${s}\u001b[0m` : s);
  const label = { block: paint('31;1', 'BLOCK'), warn: paint('33;1', 'WARN '), pass: paint('32', 'PASS ') };
  const lines: string[] = [];
  const count = { block: 0, warn: 0, pass: 0 };
  for (const r of results) {
    count[r.verdict]++;
    if (r.verdict === 'pass' && r.findings.length === 0) continue;
    lines.push(`${label[r.verdict]} ${r.name || '(unnamed)'}`);
    for (const f of r.findings) lines.push(`       [${f.severity}] ${f.rule} at ${f.path || '(definition)'}: ${f.evidence}`);
  }
  lines.push(`${results.length} tool(s): ${count.block} blocked, ${count.warn} warned, ${count.pass} passed`);
  return `${lines.join('\n')}\n`;
}

export function register(program: Command): void {
  const scan = program.commands.find((c) => c.name() === 'scan') ?? program.command('scan').description('offline scanners');
  scan
    .command('tools')
    .description('scan tool definitions for poisoning (a JSON array of tools or a tools/list result; - reads stdin)')
    .argument('<file>', 'JSON file, or - for standard input')
    .option('--format <format>', 'text (default) or json', 'text')
    .option('--known <file>', 'tools of other servers for the cross-server checks: {"server": [tools]} or [{server,name,description}]')
    .option('--server <name>', 'name of the server the scanned tools belong to (excluded from --known matches)')
    .option('--fail-on <verdict>', 'exit 1 when a tool is at least this verdict: block, warn or never', 'never')
    .action(async (file: string, opts: { format: string; known?: string; server?: string; failOn: string }) => {
      if (opts.format !== 'json' && opts.format !== 'text') throw new Error(`--format must be json or text, not "${opts.format}"`);
      if (!['block', 'warn', 'never'].includes(opts.failOn)) throw new Error(`--fail-on must be block, warn or never, not "${opts.failOn}"`);
      const known = opts.known ? await readKnown(opts.known) : undefined;
      let text: string;
      try {
        text = await readInput(file);
      } catch (err) {
        process.stderr.write(`bastion scan tools: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}\n`);
        process.exitCode = 2;
        return;
      }
      const r = runScanTools(text, { format: opts.format, failOn: opts.failOn as 'block' | 'warn' | 'never', known, server: opts.server, color: opts.format === 'text' && process.stdout.isTTY === true });
      if (r.exitCode === 2) process.stderr.write(r.output);
      else process.stdout.write(r.output);
      process.exitCode = r.exitCode;
    });
}
