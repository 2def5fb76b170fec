/**
 * `npm run bench`: tools/call throughput, p50/p99 latency and CPU per call of the rows in
 * bench/rows.ts at concurrency 1, 10 and 50, then the ratios of the performance target.
 * Writes bench/results/latest.json. `npm run bench -- --memory` runs the memory mode instead.
 * `npm run bench -- --help` lists the options. See docs/bench.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, runBench, runMemory } from './harness.js';
import { formatBench, formatMedianRatios, formatMemory, medianRatios, memoryGrowth, ratios } from './report.js';
import { ROWS } from './rows.js';
import { formatProfiles, summarizeProfiles } from './profile.js';

const HELP = `usage: npm run bench -- [options]

  --rows a,b,...        rows to run (default: ${defaultRows().join(',')}; all: ${ROWS.map((r) => r.id).join(',')})
  --store redis         also run the rows with the Redis state store (${ROWS.filter((r) => r.flag === 'store-redis').map((r) => r.id).join(',')})
  --audit               also run the stdio row with audit off and with a signed audit file (the cost of auditing)
  --no-policy           skip the authorization micro-bench (10 and 10,000 rules, argument validation; printed by default)
  --warm                also run the child-per-session stdio row at c=10 with its children warm (${ROWS.filter((r) => r.flag === 'warm').map((r) => r.id).join(',')}: 12 s warm-up; adds about 16 s)
  --auth                also run the rows with authentication on (${ROWS.filter((r) => r.flag === 'auth').map((r) => r.id).join(',')})
  --concurrency 1,10,50 concurrency levels (default 1,10,50)
  --duration MS         measured window per cell (default 3000)
  --warmup MS           unmeasured load before each window (default 1000)
  --prime MS            unmeasured load at c=10 on every row before the first cell, so every process's JIT is warm (default 2000; 0: none)
  --calls N             measure a fixed number of calls per cell instead of a duration
  --repeat N            run the whole bench N times and judge the ratios on their median (default 1)
  --sessions N          sessions per cell, shared by the c clients (default: one per client)
  --sdk-json            serve the SDK rows with enableJsonResponse (default: SDK default, SSE)
  --profile             write V8 CPU profiles of the processes under test and print their top functions
  --no-pin              do not pin with taskset
  --no-build            do not run npm run build first
  --out FILE            JSON results (default bench/results/latest.json)
  --memory              memory mode: one session, calls up to 100,000 (rows gateway-stdio,sdk-direct-json)
  --memory-rows a,b     memory rows (gateway-stdio, gateway-http, sdk-direct-json, sdk-direct)
  --memory-calls 10000,25000,50000,75000,100000  checkpoints
  --help`;

function parse(argv: string[]): Map<string, string | true> {
  const m = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (!a.startsWith('--')) throw new Error(`unexpected argument "${a}"; see --help`);
    const [k, inline] = a.slice(2).split('=', 2) as [string, string | undefined];
    if (inline !== undefined) m.set(k, inline);
    else if (argv[i + 1] !== undefined && !(argv[i + 1] as string).startsWith('--')) m.set(k, argv[++i] as string);
    else m.set(k, true);
  }
  return m;
}

function rowFlags(args: Map<string, string | true>): string[] {
  const flags: string[] = [];
  if (args.has('auth')) flags.push('auth');
  if (args.has('audit')) flags.push('audit');
  if (args.has('warm')) flags.push('warm');
  const store = args.get('store');
  if (store !== undefined) {
    if (store !== 'redis' && store !== 'memory') throw new Error(`--store takes redis or memory, got "${String(store)}"`);
    if (store === 'redis') flags.push('store-redis');
  }
  return flags;
}

function defaultRows(flags: string[] = []): string[] {
  return ROWS.filter((r) => r.flag === undefined || flags.includes(r.flag)).map((r) => r.id);
}

const KNOWN = new Set(['sessions', 'store', 'auth', 'audit', 'warm', 'no-policy', 'profile', 'rows', 'concurrency', 'duration', 'warmup', 'prime', 'calls', 'sdk-json', 'no-pin', 'no-build', 'out', 'memory', 'memory-rows', 'memory-calls', 'repeat', 'help']);

function list(v: string | true | undefined, fallback: string): string[] {
  return (typeof v === 'string' ? v : fallback).split(',').map((s) => s.trim()).filter(Boolean);
}
function num(v: string | true | undefined, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} needs a non-negative number, got "${String(v)}"`);
  return n;
}

async function main(): Promise<void> {
  const args = parse(process.argv.slice(2));
  if (args.has('help')) {
    console.log(HELP);
    return;
  }
  for (const k of args.keys()) if (!KNOWN.has(k)) throw new Error(`unknown option --${k}; see --help`);
  const started = Date.now();
  const log = (line: string): void => console.error(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${line}`);
  const out = typeof args.get('out') === 'string' ? (args.get('out') as string) : join(ROOT, 'bench', 'results', args.has('memory') ? 'memory.json' : 'latest.json');
  let json: unknown;
  if (args.has('memory')) {
    const report = await runMemory({
      rows: list(args.get('memory-rows'), 'gateway-stdio,sdk-direct-json'),
      checkpoints: list(args.get('memory-calls'), '10000,25000,50000,75000,100000').map((s) => num(s, 'memory-calls', 0)),
      concurrency: 10,
      pin: !args.has('no-pin'),
      build: !args.has('no-build'),
      log,
    });
    console.log(formatMemory(report));
    json = { ...report, growth: memoryGrowth(report) };
  } else {
    const calls = args.get('calls');
    const repeat = Math.max(1, Math.floor(num(args.get('repeat'), 'repeat', 1)));
    const runOnce = (build: boolean) => runBench({
      rows: list(args.get('rows'), defaultRows(rowFlags(args)).join(',')),
      concurrency: list(args.get('concurrency'), '1,10,50').map((s) => num(s, 'concurrency', 1)),
      warmupMs: num(args.get('warmup'), 'warmup', 1000),
      primeMs: num(args.get('prime'), 'prime', 2000),
      ...(calls !== undefined ? { calls: num(calls, 'calls', 0) } : { durationMs: num(args.get('duration'), 'duration', 3000) }),
      pin: !args.has('no-pin'),
      sdkJson: args.has('sdk-json'),
      build,
      profile: args.has('profile'),
      ...(args.has('sessions') ? { sessions: num(args.get('sessions'), 'sessions', 1) } : {}),
      log,
    });
    const report = await runOnce(!args.has('no-build'));
    const rs = ratios(report);
    console.log(formatBench(report, rs));
    json = { ...report, ratios: rs };
    if (repeat > 1) {
      const runs = [rs];
      const reports = [report];
      for (let i = 1; i < repeat; i++) {
        log(`run ${i + 1} of ${repeat}`);
        const again = await runOnce(false);
        const againRatios = ratios(again);
        console.log(`\n${formatBench(again, againRatios)}`);
        runs.push(againRatios);
        reports.push(again);
      }
      const median = medianRatios(runs);
      console.log(`\n${formatMedianRatios(median, repeat)}`);
      json = { ...report, ratios: rs, runs: reports.map((r, i) => ({ ...r, ratios: runs[i] })), medianRatios: median };
    }
    if (!args.has('no-policy')) {
      const { runPolicyBench, formatPolicyBench } = await import('./policy.js');
      const policy = await runPolicyBench();
      console.log(`\n${formatPolicyBench(policy)}`);
      json = { ...(json as object), policy };
    }
    if (args.has('profile')) {
      const profiles = summarizeProfiles(join(report.meta.workDir, 'profiles'), ROOT);
      console.log(`\n${formatProfiles(profiles)}\n(profiles in ${join(report.meta.workDir, 'profiles')})`);
      json = { ...(json as object), profiles };
    }
  }
  mkdirSync(join(out, '..'), { recursive: true });
  writeFileSync(out, `${JSON.stringify(json, null, 2)}\n`);
  console.error(`\nwrote ${out} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
}

main().catch((err: unknown) => {
  console.error(`bench: ${(err as Error).message}`);
  process.exit(1);
});
