import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Histogram, Registry } from 'prom-client';
import { FastHistogram } from '../../src/metrics/fast-metrics.js';

test('FastHistogram exposes exactly what a prom-client histogram would', async () => {
  const buckets = [0.001, 0.01, 0.1];
  const a = new Registry();
  const b = new Registry();
  const fast = new FastHistogram('x_seconds', 'help', 'stage', buckets, a);
  const ref = new Histogram({ name: 'x_seconds', help: 'help', labelNames: ['stage'], buckets, registers: [b] });
  for (const [s, v] of [['a', 0.0005], ['a', 0.05], ['b', 0.5], ['a', 0.01]] as const) {
    fast.observe(s, v);
    ref.labels(s).observe(v);
  }
  assert.equal(await a.metrics(), await b.metrics());
});
