import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Counter, Histogram, Registry } from 'prom-client';
import { FastCounter, FastHistogram } from '../../src/metrics/fast-metrics.js';
import { createMetrics, metricsCacheSize, type RequestObservation } from '../../src/metrics/metrics.js';

// Label values that exercise the exposition's escaping and ordering.
const NASTY = ['plain', 'with "quotes"', 'back\\slash', 'new\nline', 'a\0b', '', 'ünï', '{}', '1'];

test('FastCounter exposes exactly what a prom-client counter would (labels, escaping, order, increments, reset)', async () => {
  const a = new Registry();
  const b = new Registry();
  const fast = new FastCounter('x_total', 'help with \\ and\nnewline', ['mount', 'tool', 'outcome'], a);
  const ref = new Counter({ name: 'x_total', help: 'help with \\ and\nnewline', labelNames: ['mount', 'tool', 'outcome'], registers: [b] });
  const held = fast.labels('m', 'held', 'allowed');
  for (let i = 0; i < 40; i++) {
    const l = [NASTY[i % NASTY.length]!, NASTY[(i * 5) % NASTY.length]!, i % 3 ? 'allowed' : 'denied'] as const;
    const n = i % 4 === 0 ? 2.5 : 1;
    fast.labels(...l).inc(n);
    ref.labels(...l).inc(n);
    if (i === 7) {
      held.inc();
      ref.labels('m', 'held', 'allowed').inc();
    }
  }
  assert.equal(await a.metrics(), await b.metrics());
  a.resetMetrics();
  b.resetMetrics();
  assert.equal(await a.metrics(), await b.metrics());
  fast.labels('z', 'z', 'error').inc();
  ref.labels('z', 'z', 'error').inc();
  held.inc(); // a series held across reset() comes back, from 0
  ref.labels('m', 'held', 'allowed').inc();
  assert.equal(await a.metrics(), await b.metrics());
  assert.match(await a.metrics(), /x_total\{mount="m",tool="held",outcome="allowed"\} 1\n/);
});

test('FastCounter without labels starts at 0 like prom-client, also after reset; increments must be finite and >= 0', async () => {
  const a = new Registry();
  const b = new Registry();
  const fast = new FastCounter('y_total', 'h', [], a);
  const ref = new Counter({ name: 'y_total', help: 'h', registers: [b] });
  assert.equal(await a.metrics(), await b.metrics());
  fast.labels().inc(3);
  ref.inc(3);
  assert.equal(await a.metrics(), await b.metrics());
  a.resetMetrics();
  b.resetMetrics();
  assert.equal(await a.metrics(), await b.metrics());
  assert.throws(() => fast.labels().inc(-1), TypeError);
  assert.throws(() => fast.labels().inc(Number.NaN), TypeError);
  assert.throws(() => fast.labels().inc(Infinity), TypeError);
  assert.throws(() => fast.labels('extra'), /expected 0 label values/);
});

test('FastHistogram with several labels exposes exactly what a prom-client histogram would (le buckets, +Inf, _sum, _count, reset)', async () => {
  const buckets = [0.001, 0.01, 0.1, 1];
  const a = new Registry();
  const b = new Registry();
  const fast = new FastHistogram('x_seconds', 'help', ['mount', 'method'], buckets, a);
  const ref = new Histogram({ name: 'x_seconds', help: 'help', labelNames: ['mount', 'method'], buckets, registers: [b] });
  // on a bound (le is inclusive), between, above all buckets (only +Inf), zero, negative
  const values = [0.001, 0.0005, 0.01, 0.05, 0.1, 1, 1.5, 100, 0, -0.2, 0.3333333333333333, 1e-9];
  for (let i = 0; i < 60; i++) {
    const l = [NASTY[i % NASTY.length]!, NASTY[(i * 2) % NASTY.length]!] as const;
    const v = values[i % values.length]!;
    fast.labels(...l).observe(v);
    ref.labels(...l).observe(v);
  }
  assert.equal(await a.metrics(), await b.metrics());
  const held = fast.labels('held', 'x');
  held.observe(0.5);
  ref.labels('held', 'x').observe(0.5);
  a.resetMetrics();
  b.resetMetrics();
  assert.equal(await a.metrics(), await b.metrics());
  held.observe(0.002); // comes back with only the new observation
  ref.labels('held', 'x').observe(0.002);
  assert.equal(await a.metrics(), await b.metrics());
  assert.match(await a.metrics(), /x_seconds_count\{mount="held",method="x"\} 1\n/);
});

test('FastHistogram without labels matches prom-client; a non-finite value is ignored (no NaN sum, no count)', async () => {
  const buckets = [0.5, 1];
  const a = new Registry();
  const b = new Registry();
  const fast = new FastHistogram('z_seconds', 'h', [], buckets, a);
  const ref = new Histogram({ name: 'z_seconds', help: 'h', buckets, registers: [b] });
  assert.equal(await a.metrics(), await b.metrics());
  fast.labels().observe(0.7);
  ref.observe(0.7);
  for (const bad of [Number.NaN, Infinity, -Infinity]) fast.labels().observe(bad);
  assert.equal(await a.metrics(), await b.metrics());
  assert.throws(() => new FastHistogram('w', 'h', ['le'], buckets, new Registry()), /le is a reserved/);
  assert.throws(() => new FastHistogram('w', 'h', [], [1, 0.5], new Registry()), /increasing/);
  assert.throws(() => new FastHistogram('w', 'h', [], [0.5, Infinity], new Registry()), /finite/);
  assert.throws(() => new FastHistogram('w-x', 'h', [], buckets, new Registry()), /invalid metric name/);
  assert.throws(() => new FastCounter('w', 'h', ['a', 'a'], new Registry()), /duplicate/);
  assert.throws(() => new FastCounter('w', 'h', ['a-b'], new Registry()), /invalid label name/);
  assert.throws(() => fast.observe('x', 1), /one-label/);
});

test('label sets are told apart even when values contain any separator', async () => {
  const r = new Registry();
  const c = new FastCounter('s_total', 'h', ['a', 'b'], r);
  const seps = ['\0', ',', '|', ':', '=', '\n', '\u001f', '","'];
  for (const sep of seps) {
    c.labels(`x${sep}y`, 'z').inc();
    c.labels('x', `y${sep}z`).inc();
  }
  c.labels('["x","y"]', 'z').inc();
  const lines = (await r.metrics()).split('\n').filter((l) => l.startsWith('s_total{'));
  assert.equal(lines.length, seps.length * 2 + 1);
  assert.ok(lines.every((l) => l.endsWith(' 1')));
  const m = createMetrics({ defaultMetrics: false });
  m.observeRequest({ mount: 'a\0b', method: 'c', outcome: 'allowed', durationMs: 1 });
  m.observeRequest({ mount: 'a', method: 'b\0c', outcome: 'allowed', durationMs: 1 });
  const body = await m.registry.metrics();
  assert.equal(body.split('\n').filter((l) => l.startsWith('bastion_requests_total{')).length, 2);
});

/**
 * The request metrics of createMetrics against prom-client's own Counter/Histogram, built from
 * the registered metric's name, help, labels and buckets and fed what observeRequest should
 * record for each observation (label values already bounded). Fails if the format drifts.
 */
async function assertSameAsPromClient(m: ReturnType<typeof createMetrics>, observed: Array<{ o: RequestObservation; mount: string; method: string; tool: string; reason: string; stages: Record<string, number> }>, upstream: Array<[string, number]> = []): Promise<void> {
  const ref = new Registry();
  const spec = (name: string): { name: string; help: string; labelNames: string[]; buckets?: number[]; registers: Registry[] } => {
    const f = m.registry.getSingleMetric(name) as unknown as { name: string; help: string; labelNames: readonly string[]; buckets?: readonly number[] };
    assert.ok(f, `${name} is registered`);
    return { name: f.name, help: f.help, labelNames: [...f.labelNames], ...(f.buckets ? { buckets: [...f.buckets] } : {}), registers: [ref] };
  };
  const requests = new Counter(spec('bastion_requests_total'));
  const denials = new Counter(spec('bastion_denials_total'));
  const duration = new Histogram(spec('bastion_request_duration_seconds'));
  const stages = new Histogram(spec('bastion_stage_duration_seconds'));
  const upstreamH = new Histogram(spec('bastion_upstream_duration_seconds'));
  for (const x of observed) {
    requests.labels(x.mount, x.method, x.tool, x.o.outcome).inc();
    if (x.o.outcome !== 'allowed') denials.labels(x.mount, x.tool, x.reason).inc();
    duration.labels(x.mount, x.method).observe(x.o.durationMs / 1000);
    for (const [k, v] of Object.entries(x.stages)) stages.labels(k).observe(v / 1000);
  }
  for (const [mount, ms] of upstream) upstreamH.labels(mount).observe(ms / 1000);
  for (const name of ['bastion_requests_total', 'bastion_denials_total', 'bastion_request_duration_seconds', 'bastion_stage_duration_seconds', 'bastion_upstream_duration_seconds']) {
    assert.equal(await m.registry.getSingleMetricAsString(name), await ref.getSingleMetricAsString(name), `${name} exposition`);
  }
}

test('observeRequest exposes requests, denials, request/stage/upstream durations exactly as prom-client metrics would', async () => {
  const m = createMetrics({ defaultMetrics: false });
  const observed = [];
  const reasons = ['insufficient_scope', 'rate_limited', 'insufficient_scope', 'upstream_error'];
  for (let i = 0; i < 200; i++) {
    const outcome = (['allowed', 'allowed', 'denied', 'error'] as const)[i % 4]!;
    const tool = i % 7 === 0 ? undefined : ['echo', 'read_file', 'with "q"'][i % 3]!;
    const method = tool === undefined ? 'tools/list' : 'tools/call';
    const mount = i % 5 === 0 ? 'files' : 'echo';
    const stages: Record<string, number> = {};
    for (const s of ['transport.body', 'identity.bearer-token', 'authorization.policy'].slice(0, 1 + (i % 3))) stages[s] = (i % 13) * 0.01;
    const reason = i % 8 === 3 ? undefined : reasons[i % 4];
    const o: RequestObservation = { mount, method, tool, outcome, reason, durationMs: (i % 17) * 0.7, stages };
    m.observeRequest(o);
    observed.push({ o, mount, method, tool: tool ?? '', reason: reason ?? outcome, stages });
  }
  m.observeUpstreamLatency('echo', 3);
  m.observeUpstreamLatency('files', 0.2);
  m.observeUpstreamLatency('echo', 7000);
  await assertSameAsPromClient(m, observed, [['echo', 3], ['files', 0.2], ['echo', 7000]]);
});

test('bounds hold on every cached path: tools, mounts, methods, reasons, stages and upstream mounts go to _other past the limit, long values are cut', async () => {
  const max = 5;
  const m = createMetrics({ defaultMetrics: false, maxLabelValues: max });
  const long = (p: string, i: number): string => `${p}-${i}-${'z'.repeat(150)}`;
  const seen = { tools: new Set<string>(), reasons: new Set<string>(), mounts: new Set<string>(), methods: new Set<string>(), stages: new Set<string>() };
  const bound = (set: Set<string>, limit: number, v: string): string => {
    if (v === '') return '';
    const s = v.length > 100 ? v.slice(0, 100) : v;
    if (set.has(s)) return s;
    if (set.size >= limit) return '_other';
    set.add(s);
    return s;
  };
  const observed = [];
  const upstream: Array<[string, number]> = [];
  const seenUp = seen.mounts;
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 300; i++) {
      // a few values that stay admitted, and a flood of made-up ones (some long, cut to 100)
      const tool = i % 3 === 0 ? `t${i % 4}` : i % 3 === 1 ? `made-up-${i}` : long('tool', i);
      const mount = i % 2 ? 'echo' : long('mount', round * 300 + i);
      const method = i % 2 ? 'tools/call' : `m-${(i >> 1) % 150}`;
      const reason = i % 4 ? 'insufficient_scope' : `r-${i}`;
      const stageName = i % 2 ? 'authorization.policy' : `stage-${round}-${i}`;
      const stages = { [stageName]: 0.05 };
      const o: RequestObservation = { mount, method, tool, outcome: i % 3 ? 'denied' : 'allowed', reason, durationMs: 1, stages };
      m.observeRequest(o);
      const b = { mount: bound(seen.mounts, 200, mount), method: bound(seen.methods, 100, method), tool: bound(seen.tools, max, tool) };
      observed.push({ o, ...b, reason: o.outcome === 'allowed' ? '' : bound(seen.reasons, max, reason), stages: { [bound(seen.stages, 200, stageName)]: 0.05 } });
      if (i % 10 === 0) {
        const um = i % 20 ? 'echo' : long('up', round * 300 + i);
        m.observeUpstreamLatency(um, 2);
        upstream.push([bound(seenUp, 200, um), 2]);
      }
    }
  }
  // the exposition equals prom-client's fed with the bounded values...
  await assertSameAsPromClient(m, observed, upstream);
  // ...and the series stay within the bounds
  const body = await m.registry.metrics();
  const values = (metric: string, label: string): Set<string> => {
    const out = new Set<string>();
    for (const l of body.split('\n')) if (l.startsWith(`${metric}{`)) out.add(new RegExp(`[{,]${label}="([^"]*)"`).exec(l)![1]!);
    return out;
  };
  assert.equal(values('bastion_requests_total', 'tool').size, max + 1);
  assert.ok(values('bastion_requests_total', 'tool').has('_other'));
  assert.equal(values('bastion_denials_total', 'reason').size, max + 1);
  assert.equal(values('bastion_requests_total', 'method').size, 101);
  // mounts share one bound (200) between request and upstream metrics
  const mountsSeen = new Set([...values('bastion_request_duration_seconds_count', 'mount'), ...values('bastion_upstream_duration_seconds_count', 'mount')]);
  assert.equal(mountsSeen.size, 201);
  assert.ok(values('bastion_request_duration_seconds_count', 'mount').has('_other'));
  assert.equal(values('bastion_stage_duration_seconds_count', 'stage').size, 201);
  assert.ok(values('bastion_upstream_duration_seconds_count', 'mount').has('_other'));
  assert.ok(body.split('\n').every((l) => l.length < 400), 'long values are cut');
  // an admitted tool keeps counting in its own series; a late one keeps going to _other
  const before = /bastion_requests_total\{mount="echo",method="tools\/call",tool="t3",outcome="allowed"\} (\d+)/.exec(body);
  const otherBefore = /bastion_requests_total\{mount="echo",method="tools\/call",tool="_other",outcome="allowed"\} (\d+)/.exec(body);
  for (let i = 0; i < 3; i++) {
    m.observeRequest({ mount: 'echo', method: 'tools/call', tool: 't3', outcome: 'allowed', durationMs: 1 });
    m.observeRequest({ mount: 'echo', method: 'tools/call', tool: 'late', outcome: 'allowed', durationMs: 1 });
  }
  const after = await m.registry.metrics();
  assert.match(after, new RegExp(`bastion_requests_total\\{mount="echo",method="tools/call",tool="t3",outcome="allowed"\\} ${Number(before?.[1] ?? 0) + 3}\\n`));
  assert.match(after, new RegExp(`bastion_requests_total\\{mount="echo",method="tools/call",tool="_other",outcome="allowed"\\} ${Number(otherBefore?.[1] ?? 0) + 3}\\n`));
  assert.doesNotMatch(after, /tool="late"/);
});

test('a denial reason that changes on the same (mount, method, tool, outcome) is counted under each reason', async () => {
  const m = createMetrics({ defaultMetrics: false });
  for (let i = 0; i < 9; i++) m.observeRequest({ mount: 'a', method: 'tools/call', tool: 't', outcome: 'denied', reason: ['x', 'y', 'x'][i % 3], durationMs: 1 });
  m.observeRequest({ mount: 'a', method: 'tools/call', tool: 't', outcome: 'denied', durationMs: 1 });
  const body = await m.registry.metrics();
  assert.match(body, /bastion_denials_total\{mount="a",tool="t",reason="x"\} 6\n/);
  assert.match(body, /bastion_denials_total\{mount="a",tool="t",reason="y"\} 3\n/);
  assert.match(body, /bastion_denials_total\{mount="a",tool="t",reason="denied"\} 1\n/);
  assert.match(body, /bastion_requests_total\{mount="a",method="tools\/call",tool="t",outcome="denied"\} 10\n/);
});

test('after registry.resetMetrics() the cached series come back with fresh counts', async () => {
  const m = createMetrics({ defaultMetrics: false });
  const o: RequestObservation = { mount: 'a', method: 'tools/call', tool: 't', outcome: 'denied', reason: 'x', durationMs: 1, stages: { s: 1 } };
  for (let i = 0; i < 4; i++) m.observeRequest(o);
  m.observeUpstreamLatency('a', 1);
  m.registry.resetMetrics();
  assert.doesNotMatch(await m.registry.metrics(), /bastion_requests_total\{/);
  m.observeRequest(o);
  m.observeUpstreamLatency('a', 1);
  const body = await m.registry.metrics();
  assert.match(body, /bastion_requests_total\{mount="a",method="tools\/call",tool="t",outcome="denied"\} 1\n/);
  assert.match(body, /bastion_denials_total\{mount="a",tool="t",reason="x"\} 1\n/);
  assert.match(body, /bastion_request_duration_seconds_count\{mount="a",method="tools\/call"\} 1\n/);
  assert.match(body, /bastion_stage_duration_seconds_count\{stage="s"\} 1\n/);
  assert.match(body, /bastion_upstream_duration_seconds_count\{mount="a"\} 1\n/);
});

test('the hot-path caches stay within the label bounds under a flood of made-up names (short ones, and long ones that are cut)', () => {
  const m = createMetrics({ defaultMetrics: false, maxLabelValues: 10 });
  for (let i = 0; i < 5000; i++) {
    m.observeRequest({ mount: 'x', method: 'tools/call', tool: `t-${i}`, outcome: 'denied', reason: `r-${i}`, durationMs: 1, stages: { [`s-${i}`]: 1 } });
    m.observeUpstreamLatency(`u-${i}`, 1);
  }
  // 10 tools admitted (one record each), 200 stage names, 199 upstream mounts (+ 'x' makes the 200)
  assert.equal(metricsCacheSize(m), 10 + 200 + 199);
  const cut = createMetrics({ defaultMetrics: false });
  for (let i = 0; i < 2000; i++) {
    const long = `${i}-${'y'.repeat(120)}`;
    cut.observeRequest({ mount: long, method: 'tools/call', tool: 't', outcome: 'allowed', durationMs: 1, stages: { [long]: 1 } });
    cut.observeUpstreamLatency(long, 1);
  }
  // a value cut to 100 characters is never a cache key (it differs from what was received)
  assert.equal(metricsCacheSize(cut), 0);
});
