/**
 * `bastion scan text FILE|-`: the output sanitizer, offline, on a text (what a tool could return).
 *
 * `--format json` prints exactly
 *   {"verdict":"block"|"warn"|"pass","findings":[{"rule","severity","message","evidence"}],"sanitized":"…"}
 * `--jsonl` reads one sample per line (a JSON string, or an object with a string `text`) and
 * prints one such object per line, streaming, so thousands of samples run in one process; a
 * line that cannot be read prints {"error":"line N: …"} in its place.
 * Evidence never shows a secret in clear (masked) nor hidden characters (escaped).
 * Exit code 0 whatever the verdicts, unless `--fail-on block|warn` (then 1 when a sample reaches
 * that verdict); 2 when the input cannot be read.
 */
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { text as readAll } from 'node:stream/consumers';
import type { Command } from 'commander';
import { scanText, type ScanReport, type Verdict } from '../sanitizer/scan.js';
import { DEFAULT_POLICY, type InjectionAction, type SanitizePolicy } from '../sanitizer/types.js';

const ORDER: Record<Verdict, number> = { block: 2, warn: 1, pass: 0 };

export interface ScanTextOptions {
  format?: 'json' | 'text';
  failOn?: 'block' | 'warn' | 'never';
  injection?: InjectionAction;
}

function policyOf(opts: ScanTextOptions): SanitizePolicy {
  return opts.injection !== undefined ? { ...DEFAULT_POLICY, injection: opts.injection } : DEFAULT_POLICY;
}

export function formatReport(r: ScanReport, format: 'json' | 'text'): string {
  if (format === 'json') return `${JSON.stringify({ verdict: r.verdict, findings: r.findings, sanitized: r.sanitized })}\n`;
  const lines = [`${r.verdict.toUpperCase()}`];
  for (const f of r.findings) lines.push(`  [${f.severity}] ${f.rule}: ${f.message} — ${f.evidence}`);
  lines.push('--- sanitized ---', r.sanitized);
  return `${lines.join('\n')}\n`;
}

export function runScanText(text: string, opts: ScanTextOptions = {}): { output: string; exitCode: number; report: ScanReport } {
  const report = scanText(text, policyOf(opts));
  const failOn = opts.failOn ?? 'never';
  const exitCode = failOn !== 'never' && ORDER[report.verdict] >= ORDER[failOn] ? 1 : 0;
  return { output: formatReport(report, opts.format ?? 'text'), exitCode, report };
}

/** One JSONL input line → one JSON output line (a report, or an error object). */
export function scanJsonlLine(line: string, n: number, policy: SanitizePolicy = DEFAULT_POLICY): { output: string; verdict?: Verdict } {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (err) {
    return { output: `${JSON.stringify({ error: `line ${n}: not JSON (${(err as Error).message})` })}\n` };
  }
  const text = typeof v === 'string' ? v : typeof v === 'object' && v !== null && typeof (v as { text?: unknown }).text === 'string' ? (v as { text: string }).text : undefined;
  if (text === undefined) return { output: `${JSON.stringify({ error: `line ${n}: expected a JSON string or an object with a string "text"` })}\n` };
  const r = scanText(text, policy);
  return { output: formatReport(r, 'json'), verdict: r.verdict };
}

async function runJsonl(file: string, opts: ScanTextOptions): Promise<number> {
  const input = file === '-' ? process.stdin : createReadStream(file);
  const rl = createInterface({ input, crlfDelay: Infinity });
  const policy = policyOf(opts);
  let n = 0;
  let worst = 0;
  let bad = false;
  for await (const line of rl) {
    n++;
    if (line.trim() === '') continue;
    const r = scanJsonlLine(line, n, policy);
    if (r.verdict === undefined) bad = true;
    else worst = Math.max(worst, ORDER[r.verdict]);
    if (!process.stdout.write(r.output)) await new Promise((res) => process.stdout.once('drain', res));
  }
  const failOn = opts.failOn ?? 'never';
  if (failOn !== 'never' && worst >= ORDER[failOn]) return 1;
  return bad ? 2 : 0;
}

function readInput(file: string): Promise<string> {
  return file === '-' ? readAll(process.stdin) : readFile(file, 'utf8');
}

export function register(program: Command): void {
  const scan = program.commands.find((c) => c.name() === 'scan') ?? program.command('scan').description('offline scanners');
  scan
    .command('text')
    .description('scan a text as if a tool returned it: prompt injection, hidden characters, secrets (- reads stdin)')
    .argument('<file>', 'text file, or - for standard input')
    .option('--format <format>', 'text (default) or json', 'text')
    .option('--jsonl', 'one sample per line (a JSON string or {"text": …}); prints one JSON result per line')
    .option('--injection <action>', 'what the sanitized text shows for injections: annotate (default), redact, block or off', 'annotate')
    .option('--fail-on <verdict>', 'exit 1 when a sample is at least this verdict: block, warn or never', 'never')
    .action(async (file: string, opts: { format: string; jsonl?: boolean; injection: string; failOn: string }) => {
      if (opts.format !== 'json' && opts.format !== 'text') throw new Error(`--format must be json or text, not "${opts.format}"`);
      if (!['block', 'warn', 'never'].includes(opts.failOn)) throw new Error(`--fail-on must be block, warn or never, not "${opts.failOn}"`);
      if (!['annotate', 'redact', 'block', 'off'].includes(opts.injection)) throw new Error(`--injection must be annotate, redact, block or off, not "${opts.injection}"`);
      const o: ScanTextOptions = { format: opts.format, failOn: opts.failOn as ScanTextOptions['failOn'], injection: opts.injection as InjectionAction };
      try {
        if (opts.jsonl) {
          process.exitCode = await runJsonl(file, o);
          return;
        }
        const text = await readInput(file);
        const r = runScanText(text, o);
        process.stdout.write(r.output);
        process.exitCode = r.exitCode;
      } catch (err) {
        process.stderr.write(`bastion scan text: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}\n`);
        process.exitCode = 2;
      }
    });
}
