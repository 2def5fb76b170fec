import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStateStore } from '../../src/stores/memory.js';
import { anomalySchema } from '../../src/config/audit.js';
import { createAnomalyDetector, anomalyEvent, type AnomalyDetector } from '../../src/anomaly/detector.js';
import type { AnomalyFinding, CallObservation } from '../../src/anomaly/types.js';
import { isKnownEventType } from '../../src/audit/events.js';

const MIN = 60_000;
const T0 = Date.UTC(2026, 0, 1);

/** Deterministic pseudo-random numbers (LCG) so the traffic is the same on every run. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function setup(overrides: Record<string, unknown> = {}): { det: AnomalyDetector; clock: { t: number }; store: MemoryStateStore } {
  const clock = { t: T0 };
  const store = new MemoryStateStore({ now: () => clock.t, sweepIntervalMs: 3_600_000 });
  const det = createAnomalyDetector({ store, config: anomalySchema.parse({ enabled: true, ...overrides }), now: () => clock.t });
  return { det, clock, store };
}

const TOOLS = ['read_file', 'list_dir', 'search'];
const PATHS = ['/srv/a', '/srv/b', '/srv/c', '/srv/d', '/srv/e'];

/** One minute of normal traffic for a token: 8-14 calls among three tools, steady parameters, an occasional list. */
function normalMinute(subject: string, minute: number, r: () => number): CallObservation[] {
  const n = 8 + Math.floor(r() * 7);
  const out: CallObservation[] = [];
  for (let j = 0; j < n; j++) {
    const time = T0 + minute * MIN + Math.floor((j * MIN) / n);
    out.push({ subject, mount: 'files', method: 'tools/call', tool: TOOLS[Math.floor(r() * 3)], args: { path: PATHS[Math.floor(r() * 5)], limit: 8 + Math.floor(r() * 5), recursive: r() < 0.5 }, known: true, time });
  }
  if (minute % 10 === 0) out.unshift({ subject, mount: 'files', method: 'tools/list', time: T0 + minute * MIN });
  return out;
}

async function run(det: AnomalyDetector, clock: { t: number }, calls: CallObservation[]): Promise<AnomalyFinding[]> {
  const all: AnomalyFinding[] = [];
  for (const c of calls) {
    clock.t = c.time!;
    all.push(...(await det.observeCall(c)).findings);
  }
  return all;
}

test('normal traffic over an hour raises nothing; a token that suddenly calls 50x its baseline raises one call_rate event', async () => {
  const { det, clock } = setup();
  const r = rng(7);
  const normal: AnomalyFinding[] = [];
  for (let minute = 0; minute < 60; minute++) {
    for (const s of ['tok-a', 'tok-b', 'tok-c', 'tok-target']) normal.push(...(await run(det, clock, normalMinute(s, minute, r))));
  }
  assert.deepEqual(normal, [], 'an hour of normal traffic from four tokens raises no anomaly');

  // Minute 60: tok-target calls 50x its baseline (~11/min -> 550); the others stay normal.
  const burst: CallObservation[] = [];
  for (let j = 0; j < 550; j++) {
    burst.push({ subject: 'tok-target', mount: 'files', method: 'tools/call', tool: TOOLS[j % 3], args: { path: PATHS[j % 5], limit: 10, recursive: false }, known: true, time: T0 + 60 * MIN + Math.floor((j * MIN) / 550) });
  }
  const found = await run(det, clock, burst);
  const others: AnomalyFinding[] = [];
  for (const s of ['tok-a', 'tok-b', 'tok-c']) others.push(...(await run(det, clock, normalMinute(s, 60, r))));
  assert.deepEqual(others, [], 'normal tokens in the same minute raise nothing');
  const rate = found.filter((f) => f.kind === 'call_rate');
  assert.equal(rate.length, 1, `one call_rate finding per window: ${JSON.stringify(found.map((f) => f.kind))}`);
  const f = rate[0]!;
  assert.equal(f.subject, det.subjectId('tok-target'));
  assert.ok((f.evidence.baselinePerWindow as number) > 5 && (f.evidence.baselinePerWindow as number) < 20, JSON.stringify(f.evidence));
  assert.ok((f.evidence.callsThisWindow as number) >= (f.evidence.threshold as number));
  assert.equal(f.action, 'none');

  const ev = anomalyEvent(f, { requestId: 'req-1', principal: { subject: 'alice', issuer: 'https://as', authMethod: 'bearer' } });
  assert.equal(ev.type, 'anomaly.detected');
  assert.ok(isKnownEventType(ev.type));
  assert.equal(ev.kind, 'call_rate');
  assert.ok(!JSON.stringify(ev).includes('tok-target'), 'the raw subject key (token hash) is hashed again in the event');
});

test('enumeration: a burst of list calls, and probing unknown or hidden tools, raise events even for a brand-new token', async () => {
  const { det, clock } = setup();
  const calls: CallObservation[] = [];
  for (let j = 0; j < 40; j++) calls.push({ subject: 'fresh', mount: 'files', method: j % 2 ? 'tools/list' : 'resources/list', time: T0 + j * 100 });
  for (let j = 0; j < 6; j++) calls.push({ subject: 'fresh', mount: 'files', method: 'tools/call', tool: `admin_${j}`, known: false, args: {}, time: T0 + 5000 + j });
  const found = await run(det, clock, calls);
  assert.deepEqual(found.map((f) => f.kind).sort(), ['enumeration', 'unknown_tool']);
  const u = found.find((f) => f.kind === 'unknown_tool')!;
  assert.equal(u.severity, 'high');
  assert.equal(u.evidence.unknownToolCallsThisWindow, 5);
});

test('parameters: a new categorical value and a numeric outlier after warm-up; values are not stored or reported in clear', async () => {
  const { det, clock, store } = setup({ parameters: { warmupObservations: 50 } });
  const r = rng(3);
  const calls: CallObservation[] = [];
  for (let j = 0; j < 120; j++) {
    calls.push({ subject: `tok-${j % 4}`, mount: 'db', method: 'tools/call', tool: 'query', args: { table: ['users', 'orders', 'items'][j % 3], limit: 90 + Math.floor(r() * 20), sql: `select ${j}` }, known: true, time: T0 + j * 1000 });
  }
  assert.deepEqual(await run(det, clock, calls), [], 'warm-up and steady values raise nothing (free-text sql is not judged)');
  const odd = await run(det, clock, [
    { subject: 'tok-1', mount: 'db', method: 'tools/call', tool: 'query', args: { table: 'secret_salaries', limit: 100, sql: 'x' }, known: true, time: T0 + 200_000 },
    { subject: 'tok-1', mount: 'db', method: 'tools/call', tool: 'query', args: { table: 'users', limit: 1_000_000, sql: 'y' }, known: true, time: T0 + 201_000 },
  ]);
  assert.deepEqual(odd.map((f) => f.kind), ['parameter_value', 'parameter_outlier']);
  assert.equal(odd[0]!.evidence.parameter, 'table');
  assert.equal(odd[1]!.evidence.value, 1_000_000);
  const dump = JSON.stringify(odd) + JSON.stringify(await Promise.all((await store.keys('anomaly:')).map((k) => store.get(k))));
  assert.ok(!dump.includes('secret_salaries') && !dump.includes('orders'), 'categorical values are hashed');
});

test('tool sequences: after warm-up, a never-seen tool raises a tool_sequence finding', async () => {
  const { det, clock } = setup({ sequence: { warmupCalls: 50 } });
  const calls: CallObservation[] = [];
  for (let j = 0; j < 80; j++) calls.push({ subject: 's', mount: 'files', method: 'tools/call', tool: TOOLS[j % 3], args: {}, known: true, time: T0 + j * 5000 });
  assert.deepEqual(await run(det, clock, calls), []);
  const found = await run(det, clock, [{ subject: 's', mount: 'files', method: 'tools/call', tool: 'delete_everything', args: {}, known: true, time: T0 + 500_000 }]);
  assert.equal(found.length, 1);
  assert.equal(found[0]!.kind, 'tool_sequence');
  assert.equal(found[0]!.evidence.newTool, true);
  assert.equal(found[0]!.evidence.previousTool, 'list_dir');
});

test('upstream latency: steady answers raise nothing, a spike does', async () => {
  const { det } = setup();
  const r = rng(11);
  for (let j = 0; j < 60; j++) {
    const d = await det.observeLatency({ mount: 'files', tool: 'search', ms: 40 + r() * 20, time: T0 + j });
    assert.deepEqual(d.findings, []);
  }
  const spike = await det.observeLatency({ mount: 'files', tool: 'search', ms: 3000, time: T0 + 100 });
  assert.equal(spike.findings.length, 1);
  assert.equal(spike.findings[0]!.kind, 'latency_spike');
  assert.equal(spike.findings[0]!.evidence.ms, 3000);
});

test('actions: suspend refuses the token until reinstated; throttle limits it for a while; detection off does nothing', async () => {
  const { det, clock } = setup({ actions: { enumeration: 'suspend', callRate: 'throttle' }, throttle: { ratePerSecond: 1, burst: 2, durationSeconds: 60 } });
  const calls: CallObservation[] = [];
  for (let j = 0; j < 5; j++) calls.push({ subject: 'prober', mount: 'files', method: 'tools/call', tool: `x${j}`, known: false, time: T0 + j });
  const found = await run(det, clock, calls);
  assert.equal(found.at(-1)!.action, 'suspend');
  const a = await det.admit('prober');
  assert.equal(a.admit, false);
  assert.equal(a.admit === false && a.why, 'suspended');
  assert.deepEqual(await det.suspended(), [det.subjectId('prober')]);
  assert.deepEqual(await det.admit('someone-else'), { admit: true });
  await det.reinstate(det.subjectId('prober'));
  assert.deepEqual(await det.admit('prober'), { admit: true });

  // Throttle: a call-rate anomaly for a warmed-up token.
  const r = rng(5);
  for (let m = 0; m < 6; m++) await run(det, clock, normalMinute('busy', m, r));
  const burst: CallObservation[] = Array.from({ length: 200 }, (_, j) => ({ subject: 'busy', mount: 'files', method: 'tools/call', tool: TOOLS[j % 3], args: { path: '/srv/a', limit: 10, recursive: true }, known: true, time: T0 + 6 * MIN + j }));
  const d = await run(det, clock, burst);
  assert.ok(d.some((f) => f.kind === 'call_rate' && f.action === 'throttle'));
  assert.deepEqual(await det.admit('busy'), { admit: true });
  assert.deepEqual(await det.admit('busy'), { admit: true });
  const third = await det.admit('busy');
  assert.equal(third.admit === false && third.why, 'throttled');
  clock.t += 61_000;
  assert.deepEqual(await det.admit('busy'), { admit: true }, 'the throttle expires');

  const off = createAnomalyDetector({ store: new MemoryStateStore(), config: anomalySchema.parse({}) });
  assert.deepEqual(await off.observeCall({ subject: 'x', mount: 'm', method: 'tools/call', tool: 'y', known: false }), { findings: [], action: 'none' });
});
