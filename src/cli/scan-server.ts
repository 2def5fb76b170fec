/**
 * `bastion scan server URL` and `bastion scan server --stdio -- COMMAND ARGS…`: the security
 * posture of an MCP server across four layers (transport, identity, authorization, tools),
 * offline. Formats: text (default; progress on stderr when it is a terminal), json (the
 * contract in docs/scan.md), sarif (2.1.0), html (one self-contained page). `--fail-on SEV`
 * exits 1 when any finding is at or above SEV; 2 when the scan itself could not run.
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { scanServer, type PostureReport, type ScanSeverity, type ScanTarget } from '../scan/index.js';
import { atOrAbove } from '../scan/grade.js';
import { renderHtml } from '../scan/report/html.js';
import { renderJson } from '../scan/report/json.js';
import { renderSarif } from '../scan/report/sarif.js';
import { renderText } from '../scan/report/text.js';
import { LAYERS, SEVERITIES } from '../scan/types.js';

export type ScanFormat = 'text' | 'json' | 'sarif' | 'html';

export interface ScanServerCliOptions {
  format: ScanFormat;
  failOn?: ScanSeverity | 'never';
  color?: boolean;
}

export function renderReport(r: PostureReport, format: ScanFormat, color = false): string {
  switch (format) {
    case 'json':
      return renderJson(r);
    case 'sarif':
      return renderSarif(r);
    case 'html':
      return renderHtml(r);
    default:
      return renderText(r, color);
  }
}

export function exitCodeFor(r: PostureReport, failOn: ScanSeverity | 'never' | undefined): number {
  if (!failOn || failOn === 'never') return 0;
  return LAYERS.some((l) => r.layers[l].findings.some((f) => atOrAbove(f, failOn))) ? 1 : 0;
}

interface Opts {
  stdio?: boolean;
  format: string;
  failOn: string;
  token?: string;
  ca?: string;
  insecure?: boolean;
  lockfile?: string;
  lockfileServer?: string;
  output?: string;
  timeout: string;
  cwd?: string;
}

export function register(program: Command): void {
  const scan = program.commands.find((c) => c.name() === 'scan') ?? program.command('scan').description('offline scanners');
  scan
    .command('server')
    .description('audit an MCP server\'s security posture (transport, identity, authorization, tools): URL, or --stdio -- COMMAND ARGS…')
    .argument('<target...>', 'the Streamable HTTP URL, or with --stdio the command and its arguments (after --)')
    .option('--stdio', 'launch the server as a child process and talk to it over stdio')
    .option('--format <format>', 'text (default), json, sarif or html', 'text')
    .option('--output <file>', 'write the report to FILE instead of standard output')
    .option('--fail-on <severity>', 'exit 1 when a finding is at or above: critical, high, medium, low, info or never', 'never')
    .option('--token <token>', 'bearer token to scan an authenticated server (default: env BASTION_SCAN_TOKEN); never printed')
    .option('--ca <file>', 'PEM file of extra CA certificates to trust (private CA)')
    .option('--insecure', 'send the token even when the certificate does not verify')
    .option('--lockfile <file>', 'compare the definitions with this lockfile (changed/new/removed since the last pin)')
    .option('--lockfile-server <name>', 'the server name in the lockfile (default: its only server)')
    .option('--timeout <ms>', 'per-request timeout in milliseconds', '10000')
    .addHelpText('after', '\nExamples:\n  bastion scan server https://mcp.example.com/mcp --format html --output report.html\n  bastion scan server --fail-on high --stdio -- npx -y @modelcontextprotocol/server-everything\n')
    .action(async (target: string[], opts: Opts) => {
      if (!['text', 'json', 'sarif', 'html'].includes(opts.format)) throw new Error(`--format must be text, json, sarif or html, not "${opts.format}"`);
      if (opts.failOn !== 'never' && !SEVERITIES.includes(opts.failOn as ScanSeverity)) throw new Error(`--fail-on must be one of ${SEVERITIES.join(', ')} or never, not "${opts.failOn}"`);
      const timeoutMs = Number(opts.timeout);
      if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new Error(`--timeout must be a positive number of milliseconds, not "${opts.timeout}"`);
      let t: ScanTarget;
      if (opts.stdio) {
        const [command, ...args] = target;
        if (!command) throw new Error('--stdio needs a command: bastion scan server --stdio -- COMMAND ARGS…');
        t = { kind: 'stdio', command, args };
      } else {
        if (target.length !== 1) throw new Error('give one URL (or --stdio -- COMMAND ARGS… for a local server)');
        let url: URL;
        try {
          url = new URL(target[0]!);
        } catch {
          throw new Error(`"${target[0]}" is not a URL; for a command use --stdio -- COMMAND ARGS…`);
        }
        if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`the URL must be http: or https:, not ${url.protocol}`);
        t = { kind: 'http', url };
      }
      const token = opts.token ?? process.env.BASTION_SCAN_TOKEN;
      const ca = opts.ca
        ? await readFile(opts.ca).catch((err: NodeJS.ErrnoException) => {
            throw new Error(`--ca ${opts.ca}: cannot read it (${err.code ?? err.message})`, { cause: err });
          })
        : undefined;
      const tty = process.stderr.isTTY === true;
      let report: PostureReport;
      try {
        report = await scanServer(t, {
          ...(token ? { token } : {}),
          ...(ca ? { ca } : {}),
          ...(opts.insecure ? { insecure: true } : {}),
          ...(opts.lockfile ? { lockfile: opts.lockfile } : {}),
          ...(opts.lockfileServer ? { lockfileServer: opts.lockfileServer } : {}),
          timeoutMs,
          ...(tty && opts.format === 'text' ? { onProgress: (m: string) => process.stderr.write(`\u001b[2K\r… ${m}`) } : {}),
        });
      } catch (err) {
        if (tty) process.stderr.write('\u001b[2K\r');
        let msg = (err as Error).message ?? String(err);
        if (token) msg = msg.split(token).join('<token>');
        process.stderr.write(`bastion scan server: the scan could not run: ${msg}\n`);
        process.exitCode = 2;
        return;
      }
      if (tty && opts.format === 'text') process.stderr.write('\u001b[2K\r');
      const out = renderReport(report, opts.format as ScanFormat, opts.format === 'text' && !opts.output && process.stdout.isTTY === true);
      if (opts.output) await writeFile(opts.output, out);
      else process.stdout.write(out);
      process.exitCode = exitCodeFor(report, opts.failOn as ScanSeverity | 'never');
    });
}
