/**
 * `npm run conformance -- --url URL`: run the official MCP conformance server suite
 * (@modelcontextprotocol/conformance, `--suite all` by default) against a Streamable HTTP
 * endpoint and print one line per scenario.
 *
 *   npm run conformance -- --url http://127.0.0.1:8080/mcp/demo
 *   npm run conformance -- --fixture            # against the repo's conformance fixture, directly
 *   npm run conformance -- --fixture --gateway stdio|http
 *                                               # the fixture behind a gateway with every layer on
 *   npm run conformance -- --url URL --scenario tools-call-sampling --json
 *
 * The suite connects without credentials: point it at a mount with authentication off on
 * loopback. On Node 20 the package needs `fs.globSync` (Node 22): a resolve hook in
 * test/fixtures/conformance-node20/ supplies it to that package only.
 *
 * Exit code: 0 when no scenario failed, 1 otherwise, 2 on a usage or run error.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'node_modules/@modelcontextprotocol/conformance/dist/index.js');
const NODE20_HOOK = join(ROOT, 'test/fixtures/conformance-node20/register.mjs');

export type Suite = 'all' | 'active' | 'pending';

export interface ScenarioResult {
  scenario: string;
  passed: number;
  failed: number;
  warnings: number;
  /** `check-id: message` of every FAILURE check. */
  failures: string[];
  /** `check-id: message` of every WARNING check. */
  warningMessages: string[];
}

export interface ConformanceRun {
  results: ScenarioResult[];
  /** The conformance CLI's exit code (0: nothing failed). */
  exitCode: number;
  /** Combined stdout and stderr of the CLI. */
  output: string;
}

export interface ConformanceOptions {
  url: string;
  suite?: Suite;
  scenario?: string;
  /** Keep checks.json per scenario here (default: a temporary folder, removed afterwards). */
  outDir?: string;
  /** Kill the run after this long (default 5 minutes). */
  timeoutMs?: number;
}

interface Check {
  id: string;
  status: string;
  errorMessage?: string;
  details?: { message?: string };
}

/** `server-<scenario>-<ISO timestamp with dashes>` -> `<scenario>` */
function scenarioOf(dir: string): string {
  return dir.replace(/^server-/, '').replace(/-\d{4}-\d{2}-\d{2}T[\d-]+Z$/, '');
}

export function readResults(outDir: string): ScenarioResult[] {
  const out: ScenarioResult[] = [];
  for (const d of readdirSync(outDir, { withFileTypes: true })) {
    if (!d.isDirectory()) continue;
    let checks: Check[];
    try {
      checks = JSON.parse(readFileSync(join(outDir, d.name, 'checks.json'), 'utf8')) as Check[];
    } catch {
      continue;
    }
    const msg = (c: Check): string => `${c.id}: ${c.errorMessage ?? c.details?.message ?? ''}`.trim();
    const failures = checks.filter((c) => c.status === 'FAILURE' || c.status === 'ERROR');
    const warnings = checks.filter((c) => c.status === 'WARNING');
    out.push({
      scenario: scenarioOf(d.name),
      passed: checks.filter((c) => c.status === 'SUCCESS').length,
      failed: failures.length,
      warnings: warnings.length,
      failures: failures.map(msg),
      warningMessages: warnings.map(msg),
    });
  }
  return out.sort((a, b) => a.scenario.localeCompare(b.scenario));
}

/** Run the conformance CLI against `url` and collect per-scenario results. */
export async function runConformance(opts: ConformanceOptions): Promise<ConformanceRun> {
  const keep = opts.outDir !== undefined;
  const outDir = opts.outDir ?? mkdtempSync(join(tmpdir(), 'bastion-conformance-'));
  const nodeArgs = 'globSync' in fs ? [] : ['--import', pathToFileURL(NODE20_HOOK).href];
  const args = [...nodeArgs, CLI, 'server', '--url', opts.url, '-o', outDir];
  if (opts.scenario) args.push('--scenario', opts.scenario);
  else args.push('--suite', opts.suite ?? 'all');
  const env = { ...process.env };
  delete env.NODE_OPTIONS; // the hook is passed explicitly; a caller's loaders are not the CLI's business
  try {
    const { code, output } = await new Promise<{ code: number; output: string }>((done, fail) => {
      const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (b: Buffer) => (output += b.toString()));
      child.stderr.on('data', (b: Buffer) => (output += b.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
      child.on('error', fail);
      child.on('close', (c, sig) => {
        clearTimeout(timer);
        done({ code: c ?? (sig ? 128 : 1), output });
      });
    });
    return { results: readResults(outDir), exitCode: code, output };
  } finally {
    if (!keep) rmSync(outDir, { recursive: true, force: true });
  }
}

export function formatSummary(results: readonly ScenarioResult[]): string {
  const width = Math.max(8, ...results.map((r) => r.scenario.length));
  const lines = results.map((r) => {
    const mark = r.failed > 0 ? 'FAIL' : r.warnings > 0 ? 'warn' : 'pass';
    let line = `${mark}  ${r.scenario.padEnd(width)}  ${r.passed} passed, ${r.failed} failed, ${r.warnings} warnings`;
    for (const f of r.failures) line += `\n        failure: ${f}`;
    for (const w of r.warningMessages) line += `\n        warning: ${w}`;
    return line;
  });
  const failed = results.filter((r) => r.failed > 0).length;
  lines.push(`\n${results.length - failed}/${results.length} scenarios passed${failed ? `, ${failed} failed` : ''}.`);
  return lines.join('\n');
}

function usage(): never {
  console.error('usage: npm run conformance -- (--url URL | --fixture [--gateway stdio|http]) [--suite all|active|pending] [--scenario NAME] [-o DIR] [--json]');
  process.exit(2);
}

async function main(argv: string[]): Promise<number> {
  const opt = (name: string, short?: string): string | undefined => {
    const i = argv.findIndex((a) => a === name || a === short);
    if (i < 0) return undefined;
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('-')) usage();
    return v;
  };
  let url = opt('--url');
  const suite = opt('--suite') as Suite | undefined;
  if (suite && !['all', 'active', 'pending'].includes(suite)) usage();
  const stops: (() => Promise<void>)[] = [];
  const through = opt('--gateway');
  if (through !== undefined && through !== 'stdio' && through !== 'http') usage();
  if (argv.includes('--fixture')) {
    const { startConformanceHttp } = await import('../test/fixtures/conformance-server.js');
    const fx = await startConformanceHttp();
    url = fx.url;
    stops.push(fx.close);
    if (through) {
      const { compileFixture } = await import('../test/fixtures/compile-fixture.js');
      const { parseConfig } = await import('../src/config/load.js');
      const { startGatewayFromConfig } = await import('../src/gateway.js');
      const { createLogger } = await import('../src/logger.js');
      const entry = join(ROOT, 'test/fixtures/conformance-server.ts');
      const upstream = through === 'stdio' ? { stdio: { command: process.execPath, args: [compileFixture(entry), '--stdio'] } } : { http: { url: fx.url } };
      const loaded = parseConfig({
        listen: { host: '127.0.0.1', port: 0 },
        log: { level: 'silent' },
        audit: { sinks: [] },
        integrity: { persistTofu: false },
        servers: { fixture: { ...upstream, defaultTool: 'allow', defaultResource: 'allow', defaultPrompt: 'allow' } },
      });
      const gw = await startGatewayFromConfig(loaded, { logger: createLogger('silent') });
      url = `${gw.url}/mcp/fixture`;
      stops.unshift(() => gw.close());
    }
  } else if (through) usage();
  if (!url) usage();
  try {
    const run = await runConformance({ url, suite: suite ?? 'all', scenario: opt('--scenario'), outDir: opt('-o', '--output-dir') });
    if (run.results.length === 0) {
      console.error(`The conformance suite produced no results (exit ${run.exitCode}). Its output:\n${run.output}`);
      return 2;
    }
    if (argv.includes('--json')) console.log(JSON.stringify({ url, exitCode: run.exitCode, results: run.results }, null, 2));
    else console.log(`Conformance (${suite ?? 'all'}) against ${url}\n\n${formatSummary(run.results)}`);
    return run.results.some((r) => r.failed > 0) || run.exitCode !== 0 ? 1 : 0;
  } finally {
    for (const stop of stops) await stop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(`conformance: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(2);
    },
  );
}
