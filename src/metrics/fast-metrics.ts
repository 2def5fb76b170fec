/**
 * Counter and histogram for the per-request hot path. prom-client's labelled `inc`/`observe`
 * re-hash and copy the label object on every call (several hundred ns each, and a request makes
 * over a dozen); these keep one small series object per label set, found once by `labels(...)`
 * and then held by the caller, so an observation is a few arithmetic operations and allocates
 * nothing (bench/metrics-micro.ts measures the whole observeRequest). prom-client's metric shape is built
 * only when /metrics is scraped: they are registered into a prom-client Registry like any
 * metric (`get()`, `reset()`), and the exposition is exactly what prom-client's own Counter and
 * Histogram print for the same observations (names, HELP/TYPE, label order, `le` buckets with
 * `+Inf`, `_sum`, `_count`, series in first-seen order); test/metrics/fast-metrics.test.ts
 * compares the two byte for byte.
 *
 * Differences from prom-client, on purpose:
 * - a histogram ignores a value that is not a finite number (prom-client throws; a metric must
 *   not fail a request, nor turn `_sum` into NaN);
 * - label values are kept as strings (prom-client prints `${value}`, so the text is the same).
 *
 * These bound nothing themselves: callers bound label values (metrics.ts, LabelBound).
 */
import type { Registry } from 'prom-client';

type Labels = Record<string, string | number>;
interface MetricValue {
  value: number;
  labels: Labels;
  metricName?: string;
}
interface MetricShape {
  name: string;
  help: string;
  type: string;
  aggregator: string;
  values: MetricValue[];
}

/** Map key for a label set; collision-free (a label value may contain any character). */
function keyOf(values: readonly string[]): string {
  return values.length === 1 ? values[0]! : JSON.stringify(values);
}

function labelObject(names: readonly string[], values: readonly string[]): Labels {
  const o: Labels = {};
  for (let i = 0; i < names.length; i++) o[names[i]!] = values[i]!;
  return o;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

abstract class FastMetric<S extends { attached: boolean }> {
  /** Every series handed out, by label set (so a held series stays the one found again). */
  private readonly series = new Map<string, S>();
  /** The series in the exposition, in the order they were first observed (prom-client's order). */
  protected readonly exposed = new Set<S>();
  readonly labelNames: readonly string[];
  readonly aggregator = 'sum';

  constructor(
    readonly name: string,
    readonly help: string,
    labelNames: string | readonly string[],
  ) {
    this.labelNames = Object.freeze(typeof labelNames === 'string' ? [labelNames] : [...labelNames]);
    if (!METRIC_NAME.test(name)) throw new Error(`invalid metric name: ${name}`);
    for (const l of this.labelNames) if (!LABEL_NAME.test(l) || l.startsWith('__')) throw new Error(`${name}: invalid label name: ${l}`);
    if (new Set(this.labelNames).size !== this.labelNames.length) throw new Error(`${name}: duplicate label name`);
  }

  protected abstract make(values: readonly string[]): S;

  /** The series for these label values (one per label name, in order), created on first use. Hold on to it. */
  labels(...values: Array<string | number>): S {
    if (values.length !== this.labelNames.length) {
      throw new Error(`${this.name}: expected ${this.labelNames.length} label values (${this.labelNames.join(', ')}), got ${values.length}`);
    }
    const v = values.map(String);
    const key = keyOf(v);
    let s = this.series.get(key);
    if (s === undefined) {
      s = this.make(v);
      this.series.set(key, s);
    }
    return s;
  }

  protected lookup(key: string): S | undefined {
    return this.series.get(key);
  }

  /**
   * A series enters the exposition on its first observation (like prom-client, which has no
   * entry before), and again on the first one after reset(); the series zeroes itself first.
   */
  attach(s: S): void {
    s.attached = true;
    this.exposed.add(s);
  }

  /** Like prom-client: every series leaves the exposition until it is observed again. */
  reset(): void {
    for (const s of this.exposed) s.attached = false;
    this.exposed.clear();
  }
}

export class CounterSeries {
  value = 0;
  attached = false;
  constructor(
    private readonly owner: FastCounter,
    readonly labels: Labels,
  ) {}

  inc(n = 1): void {
    if (!(n >= 0 && n !== Infinity)) throw new TypeError(`counter increment must be a finite number >= 0, got ${n}`);
    if (!this.attached) {
      this.value = 0;
      this.owner.attach(this);
    }
    this.value += n;
  }
}

export class FastCounter extends FastMetric<CounterSeries> {
  readonly type = 'counter';

  constructor(name: string, help: string, labelNames: string | readonly string[], registry: Registry) {
    super(name, help, labelNames);
    this.reset();
    registry.registerMetric(this as never);
  }

  protected make(values: readonly string[]): CounterSeries {
    return new CounterSeries(this, labelObject(this.labelNames, values));
  }

  override reset(): void {
    super.reset();
    // prom-client shows a label-less counter at 0 from the start and after a reset
    if (this.labelNames.length === 0) this.labels().inc(0);
  }

  /** prom-client's metric shape (what Registry.getMetricsAsString reads). */
  get(): MetricShape {
    const values: MetricValue[] = [];
    for (const s of this.exposed) values.push({ value: s.value, labels: { ...s.labels } });
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

export class HistogramSeries {
  /** Per bucket, not cumulative. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  attached = false;
  constructor(
    private readonly owner: FastHistogram,
    readonly labels: Labels,
    private readonly bounds: Float64Array,
  ) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) return;
    if (!this.attached) {
      this.counts.fill(0);
      this.sum = 0;
      this.count = 0;
      this.owner.attach(this);
    }
    const b = this.bounds;
    const n = b.length;
    let i = 0;
    while (i < n && value > b[i]!) i++;
    if (i < n) this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

export class FastHistogram extends FastMetric<HistogramSeries> {
  readonly type = 'histogram';
  readonly buckets: readonly number[];
  private readonly bounds: Float64Array;

  constructor(name: string, help: string, labelNames: string | readonly string[], buckets: readonly number[], registry: Registry) {
    super(name, help, labelNames);
    this.buckets = Object.freeze([...buckets]);
    if (this.labelNames.includes('le')) throw new Error('le is a reserved label keyword');
    for (let i = 0; i < buckets.length; i++) if (!Number.isFinite(buckets[i]) || (i > 0 && !(buckets[i]! > buckets[i - 1]!))) throw new Error(`${name}: buckets must be finite and increasing`);
    this.bounds = Float64Array.from(buckets);
    // prom-client starts a label-less histogram with one empty series (but not after a reset)
    if (this.labelNames.length === 0) this.attach(this.labels());
    registry.registerMetric(this as never);
  }

  /** Shorthand for `labels(labelValue).observe(value)` on a one-label histogram (holding the series is cheaper). */
  observe(labelValue: string, value: number): void {
    if (this.labelNames.length !== 1) throw new Error(`${this.name}: observe(labelValue, value) is for a one-label histogram; use labels(...).observe(value)`);
    (this.lookup(labelValue) ?? this.labels(labelValue)).observe(value);
  }

  protected make(values: readonly string[]): HistogramSeries {
    return new HistogramSeries(this, labelObject(this.labelNames, values), this.bounds);
  }

  /** prom-client's metric shape (what Registry.getMetricsAsString reads). */
  get(): MetricShape {
    const values: MetricValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.exposed) {
      let acc = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        acc += s.counts[i]!;
        values.push({ value: acc, labels: { le: this.buckets[i]!, ...s.labels }, metricName: bucket });
      }
      values.push({ value: s.count, labels: { le: '+Inf', ...s.labels }, metricName: bucket });
      values.push({ value: s.sum, labels: { ...s.labels }, metricName: `${this.name}_sum` });
      values.push({ value: s.count, labels: { ...s.labels }, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
