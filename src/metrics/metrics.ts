/**
 * Prometheus metrics (prom-client), behind a small typed facade that is cheap on the hot path.
 * Label values that come from clients or upstreams (tool names, reasons) are bounded in length
 * and in number per metric, so a hostile upstream cannot blow up the registry with made-up tool
 * names (the overflow goes to `_other`).
 *
 * The per-request metrics (requests, denials, request/upstream/stage durations) are FastCounter
 * and FastHistogram series (fast-metrics.ts; same exposition as prom-client's). observeRequest
 * finds one cached record per (mount, method, tool, outcome) that holds the series directly, and
 * one cached series per stage name: a few Map lookups and additions per request, no label
 * hashing. The caches are keyed by the values as received and hold only values the bound
 * admitted unchanged, so they are no larger than the registry; a value cut or sent to `_other`
 * takes the slow path (bound, then look up) every time, which a hostile upstream may pay for.
 *
 * The server serves `metricsHandler(metrics)()` at `metrics.path` (default /metrics).
 */
import { FastCounter, FastHistogram, type CounterSeries, type HistogramSeries } from './fast-metrics.js';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { AuditMetricsHooks } from '../audit/types.js';

import type { RequestObservation } from '../pipeline/context.js';
export type { RequestObservation, RequestOutcome } from '../pipeline/context.js';

export interface Metrics extends Required<AuditMetricsHooks> {
  readonly registry: Registry;
  observeRequest(o: RequestObservation): void;
  observeStage(stage: string, ms: number): void;
  observeUpstreamLatency(mount: string, ms: number): void;
  setUpstreamHealth(mount: string, up: boolean): void;
  sanitizerHit(mount: string, rule: string, action?: string): void;
  scannerHit(mount: string, rule: string): void;
  anomalyDetected(kind: string, action: string): void;
}

export interface CreateMetricsOptions {
  registry?: Registry;
  /** Also export process metrics (CPU, memory, event loop lag). Default true. */
  defaultMetrics?: boolean;
  /** Most distinct values kept per label of client/upstream origin (tool, reason, rule). Default 500. */
  maxLabelValues?: number;
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const STAGE_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5];

/** Bounds the set of values one label may take. */
class LabelBound {
  private readonly seen = new Set<string>();
  constructor(private readonly max: number) {}
  value(v: string | undefined): string {
    if (v === undefined || v === '') return '';
    const s = v.length > 100 ? v.slice(0, 100) : v;
    if (this.seen.has(s)) return s;
    if (this.seen.size >= this.max) return '_other';
    this.seen.add(s);
    return s;
  }
}

/** What observeRequest keeps per (mount, method, tool, outcome) as received. */
interface RequestRecord {
  readonly requests: CounterSeries;
  readonly duration: HistogramSeries;
  /** Bounded label values, for the denial series. */
  readonly mount: string;
  readonly tool: string;
  /** The last denial reason seen (as received) and its series, when that reason was admitted unchanged. */
  reason: string | undefined;
  denials: CounterSeries | undefined;
}

type Level<T> = Map<string, T>;

function child<T>(m: Map<string, Level<T>>, k: string): Level<T> {
  let c = m.get(k);
  if (c === undefined) {
    c = new Map();
    m.set(k, c);
  }
  return c;
}

const cacheSizes = new WeakMap<Metrics, () => number>();

/** How many entries the hot-path caches hold (request records, stage series, upstream series). For tests: it must stay within the label bounds. */
export function metricsCacheSize(metrics: Metrics): number {
  return cacheSizes.get(metrics)?.() ?? 0;
}

export function createMetrics(options: CreateMetricsOptions = {}): Metrics {
  const registry = options.registry ?? new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'bastion_' });
  const max = options.maxLabelValues ?? 500;
  const tools = new LabelBound(max);
  const reasons = new LabelBound(max);
  const rules = new LabelBound(max);
  const stagesB = new LabelBound(200);
  const mounts = new LabelBound(200);
  const methods = new LabelBound(100);

  const requests = new FastCounter('bastion_requests_total', 'Requests by mount, method, tool and outcome.', ['mount', 'method', 'tool', 'outcome'], registry);
  const denials = new FastCounter('bastion_denials_total', 'Refused or failed requests by mount, tool and reason.', ['mount', 'tool', 'reason'], registry);
  const duration = new FastHistogram('bastion_request_duration_seconds', 'End-to-end request latency through the gateway.', ['mount', 'method'], LATENCY_BUCKETS, registry);
  const stageDuration = new FastHistogram('bastion_stage_duration_seconds', 'Time spent in each pipeline stage.', 'stage', STAGE_BUCKETS, registry);
  const upstreamLatency = new FastHistogram('bastion_upstream_duration_seconds', 'Upstream answer latency.', 'mount', LATENCY_BUCKETS, registry);
  const upstreamUp = new Gauge({ name: 'bastion_upstream_up', help: '1 when the upstream is reachable/running, 0 when not.', labelNames: ['mount'], registers: [registry] });
  const sanitizer = new Counter({ name: 'bastion_sanitizer_hits_total', help: 'Sanitizer rule matches on upstream output.', labelNames: ['mount', 'rule', 'action'], registers: [registry] });
  const scanner = new Counter({ name: 'bastion_scanner_hits_total', help: 'Tool-definition scanner (poisoning) findings.', labelNames: ['mount', 'rule'], registers: [registry] });
  const anomalies = new Counter({ name: 'bastion_anomalies_total', help: 'Anomalies detected, by kind and action taken.', labelNames: ['kind', 'action'], registers: [registry] });
  const auditWritten = new Counter({ name: 'bastion_audit_events_written_total', help: 'Audit events written, by sink.', labelNames: ['sink'], registers: [registry] });
  const auditDropped = new Counter({ name: 'bastion_audit_events_dropped_total', help: 'Audit events lost, by sink (queue full, sink rejected, shutdown).', labelNames: ['sink'], registers: [registry] });
  const auditFailures = new Counter({ name: 'bastion_audit_sink_failures_total', help: 'Failed audit sink writes (each is retried).', labelNames: ['sink'], registers: [registry] });
  const depthReaders: Array<() => number> = [];
  new Gauge({
    name: 'bastion_audit_queue_depth',
    help: 'Audit events waiting for the slowest sink.',
    registers: [registry],
    collect() {
      let d = 0;
      for (const r of depthReaders) d += r();
      this.set(d);
    },
  });

  // mount -> method -> tool -> outcome -> record, keyed by the values as received (see top)
  const records = new Map<string, Level<Level<Level<RequestRecord>>>>();
  const stageSeries = new Map<string, HistogramSeries>();
  const upstreamSeries = new Map<string, HistogramSeries>();

  const requestRecord = (rawMount: string, rawMethod: string, rawTool: string, outcome: string): RequestRecord => {
    const mount = mounts.value(rawMount);
    const method = methods.value(rawMethod);
    const tool = tools.value(rawTool);
    const rec: RequestRecord = { requests: requests.labels(mount, method, tool, outcome), duration: duration.labels(mount, method), mount, tool, reason: undefined, denials: undefined };
    if (mount === rawMount && method === rawMethod && tool === rawTool) child(child(child(records, rawMount), rawMethod), rawTool).set(outcome, rec);
    return rec;
  };

  const denialSeries = (rec: RequestRecord, rawReason: string): CounterSeries => {
    if (rec.reason === rawReason && rec.denials !== undefined) return rec.denials;
    const reason = reasons.value(rawReason);
    const s = denials.labels(rec.mount, rec.tool, reason);
    if (reason === rawReason) {
      rec.reason = rawReason;
      rec.denials = s;
    }
    return s;
  };

  const stage = (name: string): HistogramSeries => {
    let s = stageSeries.get(name);
    if (s === undefined) {
      const b = stagesB.value(name);
      s = stageDuration.labels(b);
      if (b === name) stageSeries.set(name, s);
    }
    return s;
  };

  const observeStage = (name: string, ms: number): void => {
    stage(name).observe(ms / 1000);
  };

  const metrics: Metrics = {
    registry,
    observeRequest(o) {
      const tool = o.tool ?? '';
      const rec = records.get(o.mount)?.get(o.method)?.get(tool)?.get(o.outcome) ?? requestRecord(o.mount, o.method, tool, o.outcome);
      rec.requests.inc();
      if (o.outcome !== 'allowed') denialSeries(rec, o.reason ?? o.outcome).inc();
      rec.duration.observe(o.durationMs / 1000);
      const st = o.stages;
      if (st) {
        for (const k in st) {
          (stageSeries.get(k) ?? stage(k)).observe(st[k]! / 1000);
        }
      }
    },
    observeStage,
    observeUpstreamLatency(mount, ms) {
      let s = upstreamSeries.get(mount);
      if (s === undefined) {
        const m = mounts.value(mount);
        s = upstreamLatency.labels(m);
        if (m === mount) upstreamSeries.set(mount, s);
      }
      s.observe(ms / 1000);
    },
    setUpstreamHealth(mount, up) {
      upstreamUp.labels(mounts.value(mount)).set(up ? 1 : 0);
    },
    sanitizerHit(mount, rule, action = 'modified') {
      sanitizer.labels(mounts.value(mount), rules.value(rule), action).inc();
    },
    scannerHit(mount, rule) {
      scanner.labels(mounts.value(mount), rules.value(rule)).inc();
    },
    anomalyDetected(kind, action) {
      anomalies.labels(kind, action).inc();
    },
    auditQueueDepth(read) {
      depthReaders.push(read);
    },
    auditWritten(sink, n) {
      auditWritten.labels(sink).inc(n);
    },
    auditDropped(sink, n) {
      auditDropped.labels(sink).inc(n);
    },
    auditSinkFailed(sink) {
      auditFailures.labels(sink).inc();
    },
  };
  cacheSizes.set(metrics, () => {
    let n = stageSeries.size + upstreamSeries.size;
    for (const byMethod of records.values()) for (const byTool of byMethod.values()) for (const byOutcome of byTool.values()) n += byOutcome.size;
    return n;
  });
  return metrics;
}

export interface MetricsResponse {
  contentType: string;
  body: string;
}

/** What the server sends for GET {metrics.path}: `res.writeHead(200, {'content-type': r.contentType}).end(r.body)`. */
export function metricsHandler(metrics: Metrics): () => Promise<MetricsResponse> {
  return async () => ({ contentType: metrics.registry.contentType, body: await metrics.registry.metrics() });
}
