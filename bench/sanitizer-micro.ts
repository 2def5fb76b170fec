/**
 * Micro-benchmark of the output sanitizer stage on the common case: a benign tools/call result
 * passing through `onUpstreamMessage` with the default policy (as the pipeline calls it, awaited
 * one at a time). Reports process CPU (user + system, process.cpuUsage) per call, not wall time,
 * so other work on a shared machine moves the figure little. Median of --runs.
 *
 *   npx tsx bench/sanitizer-micro.ts [--calls 200000] [--runs 5] [--case short|4k|all] [--parts]
 *
 * Cases: `short` = one text block "hello from the mcp-bastion bench" (what bench/ servers send);
 * `4k` = one text block of ~4 KB of README-like prose (benign, uses words such as "you", "user",
 * "tool", "system" that a model-facing text has). --parts also times the pieces one string goes
 * through (processHidden, detectInjection, findSecrets, sanitizeText) for the same texts.
 */
import { outputSanitizerStage } from '../src/stages/application/output-sanitizer.js';
import type { AuditLog } from '../src/audit/types.js';
import type { MessageContext, RequestContext, ToolDefinition } from '../src/pipeline/context.js';
import type { JsonRpcMessage } from '../src/pipeline/messages.js';
import { processHidden } from '../src/sanitizer/hidden.js';
import { detectInjection } from '../src/sanitizer/injection.js';
import { findSecrets } from '../src/sanitizer/secrets.js';
import { sanitizeText } from '../src/sanitizer/text.js';
import { DEFAULT_POLICY } from '../src/sanitizer/types.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}

const CALLS = Number(arg('calls', '200000'));
const RUNS = Math.max(1, Number(arg('runs', '5')));
const CASE = arg('case', 'all');
const PARTS = process.argv.includes('--parts');

const SHORT = 'hello from the mcp-bastion bench';
const PARAGRAPH =
  'This project is a small command-line tool and library for keeping a local notes database in sync with a remote server. ' +
  'You can install it with your package manager of choice, then run the setup command once to create the configuration file in your home directory. ' +
  'The configuration file lists the servers you want to sync with, the folders that hold your notes, and the schedule for background syncs. ' +
  'Each note is a plain Markdown file with an optional front-matter block; the tool reads the title, the tags and the last-modified time from it. ' +
  'When a note changes on both sides, the tool keeps both versions and asks the user which one to keep the next time the sync command runs. ' +
  'The system keeps a journal of every change it makes, so a sync that is interrupted (a lost connection, a full disk) can be resumed without losing data. ' +
  'For scripting, every command accepts --json and prints machine-readable output; the exit status is zero on success and non-zero when anything failed. ' +
  'The library exposes the same functions as the command-line tool: open a store, list notes, read or write one, and run a sync with a callback for conflicts. ' +
  'See the examples folder for a function that exports notes to HTML, and the docs folder for the file format, the sync protocol and the list of error codes. ';
let FOUR_K = '';
while (FOUR_K.length < 4096) FOUR_K += PARAGRAPH + '\n\n';
FOUR_K = FOUR_K.slice(0, 4096);

const audit: AuditLog = { emit: () => {}, flush: async () => {}, close: async () => {} };
const tools = new Map<string, ToolDefinition>([['echo', { name: 'echo', inputSchema: { type: 'object' } } as ToolDefinition]]);
const request = { requestId: 'req-1', message: { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'echo', arguments: { text: SHORT } } } } as unknown as RequestContext;
const ctx: MessageContext = {
  mount: { name: 'echo', resource: 'http://127.0.0.1:8080/mcp/echo', config: {} as never },
  session: { id: 'sess-1', mount: 'echo', owner: undefined, protocolVersion: '2025-11-25', createdAt: 0, upstreamTools: async () => tools } as never,
  principal: undefined,
  request,
  method: 'tools/call',
};

const stage = outputSanitizerStage({ audit });
const response = (text: string): JsonRpcMessage => ({ jsonrpc: '2.0', id: 7, result: { content: [{ type: 'text', text }] } }) as JsonRpcMessage;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

async function benchStage(text: string, calls: number): Promise<number> {
  const msg = response(text);
  // Same message object each call, as a pass-through: the stage must not mutate it.
  const t0 = cpuMicros();
  for (let i = 0; i < calls; i++) {
    const out = await stage.onUpstreamMessage!(ctx, msg);
    if (out === null) throw new Error('benign message dropped');
  }
  return (cpuMicros() - t0) / calls;
}

function benchSync(fn: () => unknown, calls: number): number {
  const t0 = cpuMicros();
  for (let i = 0; i < calls; i++) fn();
  return (cpuMicros() - t0) / calls;
}

async function main(): Promise<void> {
  const cases: Array<[string, string]> = [];
  if (CASE === 'short' || CASE === 'all') cases.push(['short (32 chars)', SHORT]);
  if (CASE === '4k' || CASE === 'all') cases.push(['4 KB README prose', FOUR_K]);
  console.log(`sanitizer-micro: ${CALLS} calls per run, ${RUNS} runs, median CPU (user+system) µs per call, node ${process.version}`);
  for (const [label, text] of cases) {
    // Sanity: benign, so the stage passes the message through unchanged.
    const out = await stage.onUpstreamMessage!(ctx, response(text));
    if (JSON.stringify(out) !== JSON.stringify(response(text))) throw new Error(`${label}: benign text was changed`);
    const calls = text.length > 1000 ? Math.max(1, Math.floor(CALLS / 10)) : CALLS;
    await benchStage(text, Math.min(calls, 20000)); // warm-up
    const runs: number[] = [];
    for (let r = 0; r < RUNS; r++) runs.push(await benchStage(text, calls));
    console.log(`  stage onUpstreamMessage, ${label}: ${median(runs).toFixed(2)} µs/call  (runs: ${runs.map((x) => x.toFixed(2)).join(', ')}; ${calls} calls each)`);
    if (PARTS) {
      const parts: Array<[string, () => unknown]> = [
        ['processHidden', () => processHidden(text, DEFAULT_POLICY)],
        ['detectInjection', () => detectInjection(text)],
        ['findSecrets', () => findSecrets(text)],
        ['sanitizeText', () => sanitizeText(text, DEFAULT_POLICY)],
      ];
      for (const [name, fn] of parts) {
        benchSync(fn, Math.min(calls, 20000));
        const rs: number[] = [];
        for (let r = 0; r < RUNS; r++) rs.push(benchSync(fn, calls));
        console.log(`    ${name}: ${median(rs).toFixed(2)} µs/call`);
      }
    }
  }
}

await main();
