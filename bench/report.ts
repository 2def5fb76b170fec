/**
 * Turning bench results into the table and the ratios the performance target names
 * (issue 2, "Performance target"), measured in one run so machine speed cancels out.
 */
import type { RunResult } from './loadgen.js';
import type { BenchReport, MemoryReport, RowReport } from './harness.js';
import { fmtKb } from './harness.js';

export interface Ratio {
  name: string;
  /** e.g. "gateway-stdio/sdk-direct throughput at c=10" */
  formula: string;
  value: number | null;
  /** ">= 3" or "<= 1.2"; null for an informational ratio. */
  target: string | null;
  pass: boolean | null;
  /** Why the value is null (a row missing or unavailable). */
  missing?: string;
}

type Metric = 'throughput' | 'p50' | 'capacity';

interface RatioDef {
  name: string;
  num: string;
  den: string;
  metric: Metric;
  concurrency: number;
  target: { op: '>=' | '<='; value: number } | null;
}

/**
 * The ratios of the target, then informational ones. "calls per CPU-second" compares the CPU
 * each call costs the processes under test: on a machine whose core under test is shared with
 * other work, it is steadier than throughput, which depends on the share the scheduler gives.
 */
export const RATIO_DEFS: RatioDef[] = [
  { name: 'stdio gateway vs SDK direct, throughput', num: 'gateway-stdio', den: 'sdk-direct', metric: 'throughput', concurrency: 10, target: { op: '>=', value: 3 } },
  { name: 'HTTP gateway vs bare proxy, throughput', num: 'gateway-http', den: 'bare-proxy', metric: 'throughput', concurrency: 10, target: { op: '>=', value: 0.8 } },
  { name: 'HTTP gateway vs bare proxy, p50 latency', num: 'gateway-http', den: 'bare-proxy', metric: 'p50', concurrency: 1, target: { op: '<=', value: 1.2 } },
  { name: 'stdio gateway (shared child) vs SDK direct, throughput', num: 'gateway-stdio-shared', den: 'sdk-direct', metric: 'throughput', concurrency: 10, target: { op: '>=', value: 3 } },
  { name: 'stdio gateway vs SDK direct, calls per CPU-second', num: 'gateway-stdio', den: 'sdk-direct', metric: 'capacity', concurrency: 10, target: null },
  { name: 'HTTP gateway vs bare proxy, calls per CPU-second', num: 'gateway-http', den: 'bare-proxy', metric: 'capacity', concurrency: 10, target: null },
  { name: 'bare proxy vs SDK direct, throughput (issue measured 0.73)', num: 'bare-proxy', den: 'sdk-direct', metric: 'throughput', concurrency: 10, target: null },
  { name: 'stdio gateway, warm children (--warm), vs SDK direct, throughput', num: 'gateway-stdio-warm', den: 'sdk-direct', metric: 'throughput', concurrency: 10, target: null },
  { name: 'bare stdio proxy vs SDK direct, throughput (the ceiling of the stdio ratios here)', num: 'bare-stdio', den: 'sdk-direct', metric: 'throughput', concurrency: 10, target: null },
  { name: 'stdio gateway (shared child) vs bare stdio proxy, throughput', num: 'gateway-stdio-shared', den: 'bare-stdio', metric: 'throughput', concurrency: 10, target: null },
  { name: 'stdio gateway vs SDK direct, throughput', num: 'gateway-stdio', den: 'sdk-direct', metric: 'throughput', concurrency: 50, target: null },
  { name: 'HTTP gateway vs bare proxy, throughput', num: 'gateway-http', den: 'bare-proxy', metric: 'throughput', concurrency: 50, target: null },
];

function cell(rows: RowReport[], id: string, c: number): RunResult | string {
  const row = rows.find((r) => r.id === id);
  if (!row) return `row ${id} not run`;
  if (row.status !== 'ok') return `row ${id} ${row.status}`;
  const found = row.cells.find((x) => x.concurrency === c);
  if (!found) return `row ${id} has no c=${c} cell`;
  if (found.calls === 0 || found.errors > 0) return `row ${id} c=${c} had errors`;
  return found;
}

export function ratios(report: BenchReport): Ratio[] {
  return RATIO_DEFS.map((d) => {
    const unit = d.metric === 'throughput' ? 'req/s' : d.metric === 'p50' ? 'p50' : '1/(CPU per call)';
    const formula = `${d.num} / ${d.den} ${unit} at c=${d.concurrency}`;
    const target = d.target ? `${d.target.op} ${d.target.value}` : null;
    const a = cell(report.rows, d.num, d.concurrency);
    const b = cell(report.rows, d.den, d.concurrency);
    if (typeof a === 'string' || typeof b === 'string') {
      return { name: d.name, formula, value: null, target, pass: null, missing: typeof a === 'string' ? a : (b as string) };
    }
    if (d.metric === 'capacity' && (!a.cpuUsPerCall || !b.cpuUsPerCall)) {
      return { name: d.name, formula, value: null, target, pass: null, missing: 'no CPU figures (no /proc)' };
    }
    const value =
      d.metric === 'throughput'
        ? a.throughput / b.throughput
        : d.metric === 'p50'
          ? a.latencyMs.p50 / b.latencyMs.p50
          : (b.cpuUsPerCall as { total: number }).total / (a.cpuUsPerCall as { total: number }).total;
    const pass = d.target ? (d.target.op === '>=' ? value >= d.target.value : value <= d.target.value) : null;
    return { name: d.name, formula, value, target, pass };
  });
}

function table(header: string[], body: string[][], rightAlign: boolean[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? '').length)));
  const line = (cols: string[]): string =>
    cols.map((c, i) => (rightAlign[i] ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

function breakdown(r: RunResult): string {
  if (!r.cpuUsPerCall) return '';
  return Object.entries(r.cpuUsPerCall.byProcess)
    .map(([k, v]) => `${k.replace(':children', ' children')} ${v.toFixed(0)}`)
    .join(', ');
}

export function formatBench(report: BenchReport, rs: Ratio[]): string {
  const m = report.meta;
  const out: string[] = [];
  out.push(
    `mcp-bastion bench  ${m.date}  node ${m.node}  SDK ${m.sdkVersion}  commit ${m.gitCommit ?? '?'}`,
    `${m.cpuCount} x ${m.cpuModel}; ${m.pinning}`,
    `tools/call of a trivial echo tool, stateful sessions (${report.options.sessions ? `at most ${report.options.sessions} per cell, shared by the clients` : 'one per client'}), SDK server response mode: ${m.sdkResponseMode}`,
    '',
  );
  const body: string[][] = [];
  for (const row of report.rows) {
    if (row.status !== 'ok') {
      body.push([row.label, '-', row.status, '', '', '', '', row.reason ?? '']);
      continue;
    }
    for (const r of row.cells) {
      body.push([
        row.label,
        String(r.concurrency),
        r.throughput.toFixed(0),
        r.latencyMs.p50.toFixed(3),
        r.latencyMs.p99.toFixed(3),
        r.cpuUsPerCall ? r.cpuUsPerCall.total.toFixed(0) : 'n/a',
        String(r.errors),
        breakdown(r) + (r.errorSamples.length ? `  errors: ${r.errorSamples.join('; ')}` : ''),
      ]);
    }
  }
  out.push(table(['row', 'c', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/call', 'errors', 'CPU µs/call by process'], body, [false, true, true, true, true, true, true, false]));
  out.push('', 'Ratios (one run, same machine):');
  for (const r of rs) {
    const v = r.value === null ? `n/a (${r.missing})` : `${r.value.toFixed(2)}x`;
    const verdict = r.target === null ? '(info)' : r.pass === null ? `target ${r.target}x: not measured` : `target ${r.target}x: ${r.pass ? 'MET' : 'NOT MET'}`;
    out.push(`  ${r.name} [${r.formula}]: ${v}  ${verdict}`);
  }
  return out.join('\n');
}

export function formatMemory(report: MemoryReport): string {
  const out: string[] = [`memory: one session, concurrency ${report.options.concurrency}; ${report.meta.pinning}`];
  const body: string[][] = [];
  for (const row of report.rows) {
    if (row.status !== 'ok') {
      body.push([row.label, row.status, '', '', '', '', row.reason ?? '']);
      continue;
    }
    for (const r of row.readings) {
      body.push([
        row.label,
        String(r.calls),
        fmtKb(r.rssKb),
        r.childrenRssKb === null ? '' : fmtKb(r.childrenRssKb),
        r.heapUsedBytes === null ? 'n/a' : `${(r.heapUsedBytes / 1048576).toFixed(1)} MB`,
        String(r.errors),
        '',
      ]);
    }
  }
  out.push(table(['target', 'calls', 'RSS', 'children RSS', 'heap used', 'errors', 'note'], body, [false, true, true, true, true, true, false]));
  out.push('', 'Growth between the first and the last checkpoint (bytes per call):');
  for (const g of memoryGrowth(report)) {
    const per = (v: number | null): string => (v === null ? 'n/a' : `${v >= 0 ? '+' : ''}${v.toFixed(0)} B`);
    out.push(`  ${g.label}: ${g.fromCalls} -> ${g.toCalls} calls: RSS ${per(g.rssBytesPerCall)}, heap ${per(g.heapBytesPerCall)}`);
  }
  return out.join('\n');
}

export interface MemoryGrowth {
  id: string;
  label: string;
  fromCalls: number;
  toCalls: number;
  rssBytesPerCall: number | null;
  heapBytesPerCall: number | null;
}

/** Per row, memory growth per call between the first checkpoint after warm-up and the last. */
export function memoryGrowth(report: MemoryReport): MemoryGrowth[] {
  const out: MemoryGrowth[] = [];
  for (const row of report.rows) {
    // readings[0] is after the 1,000 warm-up calls; compare the first checkpoint with the last
    const a = row.readings[1];
    const b = row.readings[row.readings.length - 1];
    if (row.status !== 'ok' || !a || !b || a === b) continue;
    const calls = b.calls - a.calls;
    out.push({
      id: row.id,
      label: row.label,
      fromCalls: a.calls,
      toCalls: b.calls,
      rssBytesPerCall: a.rssKb !== null && b.rssKb !== null ? ((b.rssKb - a.rssKb) * 1024) / calls : null,
      heapBytesPerCall: a.heapUsedBytes !== null && b.heapUsedBytes !== null ? (b.heapUsedBytes - a.heapUsedBytes) / calls : null,
    });
  }
  return out;
}

/**
 * The median of each ratio over several runs (`--repeat N`): on a shared or virtual machine one
 * run's ratio moves by ±20% from run to run, so a target is judged on the median, and every
 * run's value is shown next to it.
 */
export function medianRatios(runs: readonly Ratio[][]): Array<Ratio & { values: Array<number | null> }> {
  const first = runs[0] ?? [];
  return first.map((r, i) => {
    const values = runs.map((rs) => rs[i]?.value ?? null);
    const known = values.filter((v): v is number => v !== null).sort((a, b) => a - b);
    if (known.length === 0) return { ...r, values, value: null, pass: null };
    const mid = known.length >> 1;
    const value = known.length % 2 === 1 ? known[mid]! : (known[mid - 1]! + known[mid]!) / 2;
    const def = RATIO_DEFS[i]!;
    const pass = def.target ? (def.target.op === '>=' ? value >= def.target.value : value <= def.target.value) : null;
    const { missing: _missing, ...rest } = r;
    return { ...rest, values, value, pass };
  });
}

export function formatMedianRatios(rs: ReturnType<typeof medianRatios>, runs: number): string {
  const out = [`Ratios, median of ${runs} runs (each run's value in brackets):`];
  for (const r of rs) {
    const each = r.values.map((v) => (v === null ? 'n/a' : v.toFixed(2))).join(', ');
    const v = r.value === null ? 'n/a' : `${r.value.toFixed(2)}x`;
    const verdict = r.target === null ? '(info)' : r.pass === null ? `target ${r.target}x: not measured` : `target ${r.target}x: ${r.pass ? 'MET' : 'NOT MET'}`;
    out.push(`  ${r.name} [${r.formula}]: ${v} [${each}]  ${verdict}`);
  }
  return out.join('\n');
}
