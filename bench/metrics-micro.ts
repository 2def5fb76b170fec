/**
 * Micro-benchmark of the per-request metrics hot path: `Metrics.observeRequest` with the
 * observation one allowed `tools/call` makes (mount `echo`, tool `echo`, 12 stage timings).
 * Reports CPU µs per call from process.cpuUsage() (user + system), not wall time, because
 * the machine is shared. Run: `npx tsx bench/metrics-micro.ts [calls]` (default 1,000,000).
 *
 * Observations are built up front (a pool of 1024 with varied timings, each `stages` object
 * filled key by key like RequestContext.timings) so the figure is the metrics cost only.
 * Each measured round is preceded by a warm-up; the best and median of 5 rounds are printed.
 */
import { createMetrics, type RequestObservation } from '../src/metrics/metrics.js';

const STAGES = [
  'transport.http-shape',
  'transport.origin',
  'transport.body',
  'transport.audit-gate',
  'identity.bearer-token',
  'identity.session',
  'identity.revocation',
  'authorization.rate-limit',
  'authorization.policy',
  'application.quarantine',
  'application.argument-validation',
  'application.tool-integrity',
];

function pool(n: number, withStages: boolean, denied = false): RequestObservation[] {
  const out: RequestObservation[] = [];
  for (let i = 0; i < n; i++) {
    const stages: Record<string, number> = {};
    if (withStages) for (let s = 0; s < STAGES.length; s++) stages[STAGES[s]!] = 0.002 + ((i * 7 + s * 13) % 100) / 1000;
    out.push({ mount: 'echo', method: 'tools/call', tool: 'echo', outcome: denied ? 'denied' : 'allowed', reason: denied ? 'insufficient_scope' : undefined, durationMs: 0.05 + (i % 50) / 10, stages: withStages ? stages : undefined });
  }
  return out;
}

function run(calls: number, obs: RequestObservation[]): number {
  const m = createMetrics({ defaultMetrics: false });
  const mask = obs.length - 1;
  for (let i = 0; i < 100_000; i++) m.observeRequest(obs[i & mask]!);
  const t0 = process.cpuUsage();
  for (let i = 0; i < calls; i++) m.observeRequest(obs[i & mask]!);
  const d = process.cpuUsage(t0);
  return (d.user + d.system) / calls;
}

function report(label: string, calls: number, obs: RequestObservation[]): void {
  const r: number[] = [];
  for (let k = 0; k < 5; k++) r.push(run(calls, obs));
  r.sort((a, b) => a - b);
  console.log(`${label.padEnd(28)} best ${r[0]!.toFixed(3)} µs/call   median ${r[2]!.toFixed(3)} µs/call   (${calls.toLocaleString('en')} calls x 5, CPU time)`);
}

const calls = Number(process.argv[2] ?? 1_000_000);
report('observeRequest, 12 stages', calls, pool(1024, true));
report('observeRequest, no stages', calls, pool(1024, false));
report('denied, 12 stages', calls, pool(1024, true, true));
