/**
 * The bench harness: starts each row's processes pinned to one CPU, drives them from a load
 * generator process pinned to the other, and collects throughput, latency percentiles and CPU
 * per call. bench/run.ts is the command line; test/bench/harness.test.ts runs it tiny.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpus, tmpdir } from 'node:os';
import { existsSync, mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunResult, RunSpec } from './loadgen.js';
import { HAS_PROC, taskset } from './procs.js';
import { ROWS, gatewayAvailability, type MemoryReading, type RowContext, type RowDef, type RunningRow } from './rows.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

export interface BenchOptions {
  rows: string[];
  concurrency: number[];
  warmupMs: number;
  /**
   * Unmeasured load (c=10) on every row once its processes are up, before the first cell: the
   * JIT of every process under test is warm when the c=1 cells, which come first, are measured.
   */
  primeMs?: number;
  /** Measured window per cell, or... */
  durationMs?: number;
  /** ...a fixed number of measured calls per cell. */
  calls?: number;
  /** Pin processes under test to CPU 0 and the load generator to CPU 1 (when taskset exists). */
  pin: boolean;
  /** Serve the SDK rows with enableJsonResponse instead of the SDK default (SSE). */
  sdkJson: boolean;
  /** Run `npm run build` first so the gateway rows use the current source. */
  build: boolean;
  /** Write V8 CPU profiles of the processes under test (meta.workDir/profiles). */
  profile?: boolean;
  /** Sessions per cell, shared round-robin by the c clients; default c (one session per client). */
  sessions?: number;
  log: (line: string) => void;
}

export interface RowReport {
  id: string;
  label: string;
  describe: string;
  status: 'ok' | 'unavailable' | 'failed';
  reason?: string;
  cells: RunResult[];
}

export interface Meta {
  date: string;
  node: string;
  sdkVersion: string;
  gitCommit: string | null;
  cpuModel: string;
  cpuCount: number;
  pinned: boolean;
  pinning: string;
  sdkResponseMode: 'sse' | 'json';
  workDir: string;
}

export interface BenchReport {
  meta: Meta;
  options: Omit<BenchOptions, 'log'>;
  rows: RowReport[];
}

/** The load generator process, driven over IPC. */
export class LoadGenerator {
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private constructor(private readonly child: ChildProcess) {
    child.on('message', (m: { seq: number; ok: boolean; value?: unknown; error?: string }) => {
      const p = this.pending.get(m.seq);
      if (!p) return;
      this.pending.delete(m.seq);
      if (m.ok) p.resolve(m.value);
      else p.reject(new Error(m.error ?? 'load generator error'));
    });
    child.on('exit', (code) => {
      for (const p of this.pending.values()) p.reject(new Error(`load generator exited (code ${code})`));
      this.pending.clear();
    });
  }

  static start(cpu: string | undefined): LoadGenerator {
    const ts = cpu !== undefined ? taskset() : null;
    const nodeArgs = ['--import', 'tsx', join(ROOT, 'bench', 'loadgen.ts')];
    const [cmd, args] = ts ? [ts, ['-c', cpu as string, process.execPath, ...nodeArgs]] : [process.execPath, nodeArgs];
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    return new LoadGenerator(child);
  }

  private call<T>(msg: Record<string, unknown>): Promise<T> {
    const seq = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(seq, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ seq, ...msg });
    });
  }

  open(url: string, sessions: number, concurrency: number, headers: Record<string, string> = {}): Promise<void> {
    return this.call({ op: 'open', url, sessions, concurrency, headers });
  }
  async run(spec: RunSpec): Promise<RunResult> {
    const r = await this.call<RunResult>({ op: 'run', spec });
    // IPC serializes NaN (no calls completed) as null: restore it.
    for (const k of Object.keys(r.latencyMs) as Array<keyof RunResult['latencyMs']>) r.latencyMs[k] ??= NaN;
    r.throughput ??= NaN;
    return r;
  }
  close(): Promise<void> {
    return this.call({ op: 'close' });
  }
  async exit(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const done = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    await this.call({ op: 'exit' }).catch(() => undefined);
    await done;
  }
}

function meta(o: Pick<BenchOptions, 'pin' | 'sdkJson'>, workDir: string): Meta {
  const git = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
  let sdkVersion = 'unknown';
  try {
    sdkVersion = (JSON.parse(readFileSync(join(ROOT, 'node_modules/@modelcontextprotocol/sdk/package.json'), 'utf8')) as { version: string }).version;
  } catch {
    // keep unknown
  }
  const pinned = o.pin && taskset() !== null && cpus().length >= 2;
  return {
    date: new Date().toISOString(),
    node: process.version,
    sdkVersion,
    gitCommit: git.status === 0 ? git.stdout.trim() : null,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cpuCount: cpus().length,
    pinned,
    pinning: pinned
      ? 'processes under test: taskset -c 0; load generator: taskset -c 1'
      : o.pin
        ? 'not pinned (taskset missing or fewer than 2 CPUs)'
        : 'not pinned (--no-pin)',
    sdkResponseMode: o.sdkJson ? 'json' : 'sse',
    workDir,
  };
}

/** Newest modification time of the TypeScript sources under src/. */
function newestSource(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

function build(log: (l: string) => void): void {
  const main = join(ROOT, 'dist', 'cli', 'main.js');
  if (existsSync(main) && statSync(main).mtimeMs >= newestSource(join(ROOT, 'src'))) {
    log('dist/ is newer than every file under src/: not rebuilding');
    return;
  }
  log('building (npm run build) ...');
  const r = spawnSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) {
    log(`  build failed (exit ${r.status}); gateway rows use the existing dist/ if there is one. Output:`);
    for (const line of `${r.stdout}${r.stderr}`.split('\n').slice(0, 15)) if (line.trim()) log(`    ${line}`);
  }
}

function contextFor(o: Pick<BenchOptions, 'pin' | 'sdkJson' | 'build' | 'log'> & { profile?: boolean }, exposeGc: boolean): { ctx: RowContext; lgCpu: string | undefined; workDir: string } {
  const workDir = mkdtempSync(join(tmpdir(), 'bastion-bench-'));
  const canPin = o.pin && taskset() !== null && cpus().length >= 2;
  if (o.build) build(o.log);
  const ctx: RowContext = {
    root: ROOT,
    cpu: canPin ? '0' : undefined,
    workDir,
    gatewayUnavailable: gatewayAvailability(ROOT),
    sdkJson: o.sdkJson,
    exposeGc,
    profile: o.profile === true,
  };
  return { ctx, lgCpu: canPin ? '1' : undefined, workDir };
}

function selectRows(ids: string[]): RowDef[] {
  return ids.map((id) => {
    const row = ROWS.find((r) => r.id === id);
    if (!row) throw new Error(`unknown row "${id}"; known rows: ${ROWS.map((r) => r.id).join(', ')}`);
    return row;
  });
}

/**
 * Every row's processes are started first and stay up (idle rows cost nothing); the cells then
 * run interleaved, concurrency by concurrency and row after row, so the rows a ratio compares
 * are measured seconds apart, not minutes: on a shared machine, load drifts.
 */
export async function runBench(o: BenchOptions): Promise<BenchReport> {
  if (o.durationMs === undefined && o.calls === undefined) throw new Error('runBench needs durationMs or calls');
  const rows = selectRows(o.rows);
  const { ctx, lgCpu, workDir } = contextFor(o, false);
  if (!HAS_PROC) o.log('no /proc: CPU per call is not reported');
  const lg = LoadGenerator.start(lgCpu);
  const reports: RowReport[] = [];
  const running = new Map<string, RunningRow>();
  try {
    for (const row of rows) {
      const rep: RowReport = { id: row.id, label: row.label, describe: row.describe, status: 'ok', cells: [] };
      reports.push(rep);
      if (row.needsGateway && ctx.gatewayUnavailable) {
        rep.status = 'unavailable';
        rep.reason = ctx.gatewayUnavailable;
        o.log(`${row.id}: unavailable (${rep.reason})`);
        continue;
      }
      o.log(`${row.id}: starting`);
      try {
        running.set(row.id, await row.start(ctx));
      } catch (err) {
        rep.status = 'failed';
        rep.reason = (err as Error).message;
        o.log(`${row.id}: failed to start: ${rep.reason}`);
      }
    }
    if ((o.primeMs ?? 0) > 0) {
      for (const rep of reports) {
        const target = running.get(rep.id);
        if (!target || rep.status !== 'ok') continue;
        try {
          await lg.open(target.url, Math.max(1, Math.min(10, o.sessions ?? 10)), 10, target.headers ?? {});
          await lg.run({ concurrency: 10, warmupMs: o.primeMs as number, calls: 1, processes: target.processes });
          await lg.close();
        } catch (err) {
          rep.status = 'failed';
          rep.reason = `priming failed: ${(err as Error).message}`;
          o.log(`${rep.id}: ${rep.reason}`);
          await lg.close().catch(() => undefined);
        }
      }
      o.log(`primed every row for ${o.primeMs} ms at c=10`);
    }
    for (const c of o.concurrency) {
      for (const [i, rep] of reports.entries()) {
        const target = running.get(rep.id);
        const def = rows[i]!; // reports are made from rows, in their order
        if (!target || rep.status !== 'ok') continue;
        if (def.concurrency !== undefined && !def.concurrency.includes(c)) continue;
        try {
          await lg.open(target.url, Math.max(1, Math.min(c, o.sessions ?? c)), c, target.headers ?? {});
          const spec: RunSpec = { concurrency: c, warmupMs: def.warmupMs ?? o.warmupMs, processes: target.processes };
          if (o.durationMs !== undefined) spec.durationMs = o.durationMs;
          else spec.calls = o.calls as number;
          const r = await lg.run(spec);
          await lg.close();
          rep.cells.push(r);
          o.log(
            `${rep.id.padEnd(20)} c=${String(c).padEnd(3)} ${r.throughput.toFixed(0).padStart(6)} req/s  p50 ${r.latencyMs.p50.toFixed(3)} ms  p99 ${r.latencyMs.p99.toFixed(3)} ms` +
              `  cpu/call ${r.cpuUsPerCall ? r.cpuUsPerCall.total.toFixed(0) : 'n/a'} µs  errors ${r.errors}`,
          );
        } catch (err) {
          rep.status = 'failed';
          rep.reason = (err as Error).message;
          o.log(`${rep.id}: failed: ${rep.reason}`);
          await lg.close().catch(() => undefined);
        }
      }
    }
    for (const rep of reports) {
      const problem = rep.status === 'ok' ? await running.get(rep.id)?.verify?.() : null;
      if (problem) {
        rep.status = 'failed';
        rep.reason = problem;
        o.log(`${rep.id}: ${problem}`);
      }
    }
  } finally {
    for (const r of running.values()) await r.stop().catch(() => undefined);
    await lg.exit();
  }
  const { log: _log, ...options } = o;
  return { meta: meta(o, workDir), options, rows: reports };
}

export interface MemoryOptions {
  rows: string[];
  /** Checkpoints in calls, e.g. [10_000, 100_000]. */
  checkpoints: number[];
  concurrency: number;
  pin: boolean;
  build: boolean;
  log: (line: string) => void;
}

export interface MemoryRowReport {
  id: string;
  label: string;
  sdkResponseMode?: 'sse' | 'json';
  status: 'ok' | 'unavailable' | 'failed';
  reason?: string;
  /** Reading after 1,000 warm-up calls, then one per checkpoint. */
  readings: Array<{ calls: number; errors: number; throughput: number } & MemoryReading>;
}

export interface MemoryReport {
  meta: Meta;
  options: Omit<MemoryOptions, 'log'>;
  rows: MemoryRowReport[];
}

const MEMORY_ROWS: Record<string, { row: string; sdkJson: boolean; label: string }> = {
  'gateway-stdio': { row: 'gateway-stdio', sdkJson: false, label: 'mcp-bastion -> SDK (stdio)' },
  'gateway-http': { row: 'gateway-http', sdkJson: false, label: 'mcp-bastion -> SDK (http): the gateway process only' },
  'sdk-direct-json': { row: 'sdk-direct', sdkJson: true, label: 'SDK direct, stateful, enableJsonResponse' },
  'sdk-direct': { row: 'sdk-direct', sdkJson: false, label: 'SDK direct, stateful, SSE (default)' },
};

/** One session, many calls: memory of the process under test at each checkpoint. */
export async function runMemory(o: MemoryOptions): Promise<MemoryReport> {
  const { ctx, lgCpu, workDir } = contextFor({ ...o, sdkJson: false }, true);
  const lg = LoadGenerator.start(lgCpu);
  const reports: MemoryRowReport[] = [];
  try {
    for (const id of o.rows) {
      const m = MEMORY_ROWS[id];
      if (!m) throw new Error(`unknown memory row "${id}"; known: ${Object.keys(MEMORY_ROWS).join(', ')}`);
      const row = selectRows([m.row])[0] as RowDef;
      const rep: MemoryRowReport = { id, label: m.label, status: 'ok', readings: [] };
      if (row.id.startsWith('sdk')) rep.sdkResponseMode = m.sdkJson ? 'json' : 'sse';
      reports.push(rep);
      if (row.needsGateway && ctx.gatewayUnavailable) {
        rep.status = 'unavailable';
        rep.reason = ctx.gatewayUnavailable;
        o.log(`memory ${id}: unavailable (${rep.reason})`);
        continue;
      }
      o.log(`memory ${id}: starting`);
      let running;
      try {
        running = await row.start({ ...ctx, sdkJson: m.sdkJson });
      } catch (err) {
        rep.status = 'failed';
        rep.reason = (err as Error).message;
        o.log(`memory ${id}: failed to start: ${rep.reason}`);
        continue;
      }
      try {
        await lg.open(running.url, 1, o.concurrency, running.headers ?? {});
        let done = 0;
        let errors = 0;
        for (const target of [1_000, ...o.checkpoints]) {
          const r = await lg.run({ concurrency: o.concurrency, warmupMs: 0, calls: target - done, processes: running.processes });
          done += r.calls;
          errors += r.errors;
          const mem = await running.memory();
          rep.readings.push({ calls: done, errors, throughput: r.throughput, ...mem });
          o.log(
            `  after ${String(done).padStart(7)} calls: RSS ${fmtKb(mem.rssKb)}` +
              `${mem.childrenRssKb !== null ? ` (+ children ${fmtKb(mem.childrenRssKb)})` : ''}` +
              `  heap ${mem.heapUsedBytes !== null ? `${(mem.heapUsedBytes / 1048576).toFixed(1)} MB` : 'n/a'}  errors ${errors}  ${r.throughput.toFixed(0)} req/s`,
          );
        }
        await lg.close();
      } catch (err) {
        rep.status = 'failed';
        rep.reason = (err as Error).message;
        o.log(`memory ${id}: failed: ${rep.reason}`);
        await lg.close().catch(() => undefined);
      } finally {
        await running.stop();
      }
    }
  } finally {
    await lg.exit();
  }
  const { log: _log, ...options } = o;
  return { meta: meta({ pin: o.pin, sdkJson: false }, workDir), options, rows: reports };
}

export function fmtKb(kb: number | null): string {
  return kb === null ? 'n/a' : `${(kb / 1024).toFixed(1)} MB`;
}
