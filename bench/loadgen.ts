/**
 * The load generator: a separate process (pinned to its own core by the harness) driven over
 * IPC. It opens stateful sessions, runs closed-loop workers (each waits for its answer before
 * sending the next call), and reads the CPU time of the processes under test from /proc at the
 * exact start and end of the measured window.
 *
 * IPC requests: {seq, op: 'open', url, sessions, concurrency, headers} | {seq, op: 'run', ...RunSpec}
 * | {seq, op: 'close'} | {seq, op: 'exit'}; each answered with {seq, ok, value?, error?}.
 */
import { Agent } from 'node:http';
import { BenchClient } from './mcp-client.js';
import { cpuDelta, cpuSnapshot, type NamedProcess } from './procs.js';

export interface RunSpec {
  concurrency: number;
  /** Unmeasured load before the window starts. */
  warmupMs: number;
  /** Length of the measured window, or... */
  durationMs?: number;
  /** ...a fixed number of measured calls (used by the smoke test and the memory mode). */
  calls?: number;
  /** Processes under test whose CPU time is read (each with its descendants). */
  processes: NamedProcess[];
}

export interface RunResult {
  concurrency: number;
  calls: number;
  errors: number;
  errorSamples: string[];
  elapsedMs: number;
  throughput: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  /** CPU µs per successful call, per process group (`NAME`, `NAME:children`) and total; null without /proc. */
  cpuUsPerCall: { total: number; byProcess: Record<string, number> } | null;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

const TEXT = 'hello from the mcp-bastion bench';

let agent: Agent | undefined;
let clients: BenchClient[] = [];

async function open(url: string, sessions: number, concurrency: number, headers: Record<string, string>): Promise<void> {
  agent = new Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
  clients = [];
  for (let i = 0; i < sessions; i++) {
    const c = new BenchClient(new URL(url), agent, headers);
    await c.initialize();
    clients.push(c);
  }
}

async function close(): Promise<void> {
  await Promise.all(clients.map((c) => c.close()));
  clients = [];
  agent?.destroy();
  agent = undefined;
}

async function run(spec: RunSpec): Promise<RunResult> {
  if (clients.length === 0) throw new Error('run before open');
  let measuring = false;
  let stopping = false;
  let issued = 0;
  let completed = 0;
  let errors = 0;
  const samples: string[] = [];
  let lat = new Float64Array(1 << 16);
  const record = (ms: number): void => {
    if (completed === lat.length) {
      const bigger = new Float64Array(lat.length * 2);
      bigger.set(lat);
      lat = bigger;
    }
    lat[completed++] = ms;
  };
  const worker = async (client: BenchClient): Promise<void> => {
    while (!stopping) {
      if (measuring && spec.calls !== undefined) {
        if (issued >= spec.calls) break;
        issued++;
      }
      const counted = measuring;
      const t0 = process.hrtime.bigint();
      let err: string | null;
      try {
        err = await client.callEcho(TEXT);
      } catch (e) {
        err = (e as Error).message;
      }
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (!measuring) continue;
      if (err) {
        errors++;
        if (samples.length < 5 && !samples.includes(err)) samples.push(err);
        if (errors > 1000 && completed === 0) stopping = true; // the target is down: do not spin
      } else if (counted || spec.calls === undefined) {
        record(ms);
      }
    }
  };

  let before: ReturnType<typeof cpuSnapshot> = null;
  let t0 = 0n;
  const startMeasuring = (): void => {
    before = cpuSnapshot(spec.processes);
    t0 = process.hrtime.bigint();
    measuring = true;
    if (spec.durationMs !== undefined) setTimeout(() => (stopping = true), spec.durationMs);
  };
  if (spec.durationMs === undefined && spec.calls === undefined) throw new Error('a run needs durationMs or calls');
  // Without warm-up the window opens before the first call, so every call is counted.
  if (spec.warmupMs <= 0) startMeasuring();
  const workers: Promise<void>[] = [];
  for (let i = 0; i < spec.concurrency; i++) workers.push(worker(clients[i % clients.length] as BenchClient));
  if (spec.warmupMs > 0) {
    await new Promise((r) => setTimeout(r, spec.warmupMs));
    startMeasuring();
  }
  await Promise.all(workers);
  const elapsedMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const after = cpuSnapshot(spec.processes);

  const sorted = lat.slice(0, completed).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  const delta = cpuDelta(before, after);
  let cpuUsPerCall: RunResult['cpuUsPerCall'] = null;
  if (delta && completed > 0) {
    const byProcess: Record<string, number> = {};
    let total = 0;
    for (const [k, v] of Object.entries(delta)) {
      byProcess[k] = v / completed;
      total += v;
    }
    cpuUsPerCall = { total: total / completed, byProcess };
  }
  return {
    concurrency: spec.concurrency,
    calls: completed,
    errors,
    errorSamples: samples,
    elapsedMs,
    throughput: completed / (elapsedMs / 1000),
    latencyMs: {
      p50: percentile(sorted, 50),
      p90: percentile(sorted, 90),
      p99: percentile(sorted, 99),
      max: sorted.length ? (sorted[sorted.length - 1] as number) : NaN,
      mean: completed ? sum / completed : NaN,
    },
    cpuUsPerCall,
  };
}

interface Request {
  seq: number;
  op: 'open' | 'run' | 'close' | 'exit';
  url?: string;
  sessions?: number;
  concurrency?: number;
  headers?: Record<string, string>;
  spec?: RunSpec;
}

process.on('message', (msg: Request) => {
  const reply = (value: unknown, error?: string): void => {
    process.send?.({ seq: msg.seq, ok: error === undefined, value, error });
  };
  const work = async (): Promise<unknown> => {
    switch (msg.op) {
      case 'open':
        return open(msg.url as string, msg.sessions ?? 1, msg.concurrency ?? 1, msg.headers ?? {});
      case 'run':
        return run(msg.spec as RunSpec);
      case 'close':
        return close();
      case 'exit':
        await close();
        setImmediate(() => process.exit(0));
        return undefined;
    }
  };
  work().then(
    (v) => reply(v),
    (e: unknown) => reply(undefined, (e as Error).message),
  );
});
process.on('disconnect', () => process.exit(0));
