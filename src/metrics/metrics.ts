/**
 * Prometheus metrics (prom-client), behind a small typed facade that is cheap on the hot path:
 * label children are cached per label set, and label values that come from clients or upstreams
 * (tool names, reasons) are bounded in length and in number per metric, so a hostile upstream
 * cannot blow up the registry with made-up tool names (the overflow goes to `_other`).
 *
 * The server serves `metricsHandler(metrics)()` at `metrics.path` (default /metrics).
 */
import { FastHistogram } from './fast-histogram.js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AuditMetricsHooks } from '../audit/types.js';

export type RequestOutcome = 'allowed' | 'denied' | 'error';

export interface RequestObservation {
  mount: string;
  /** JSON-RPC method (`tools/call`, `tools/list`, ...) or the HTTP method for non-RPC requests. */
  method: string;
  tool?: string | undefined;
  outcome: RequestOutcome;
  /** Why it was denied or failed (BastionError.reason), e.g. `insufficient_scope`. */
  reason?: string | undefined;
  /** End-to-end milliseconds. */
  durationMs: number;
  /** Milliseconds per stage (RequestContext.timings). */
  stages?: Readonly<Record<string, number>> | undefined;
}

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

function cached<T>(cache: Map<string, T>, key: string, make: () => T): T {
  let c = cache.get(key);
  if (c === undefined) {
    c = make();
    cache.set(key, c);
  }
  return c;
}

type Inc = { inc(n?: number): void };
type Obs = { observe(v: number): void };

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

  const requests = new Counter({ name: 'bastion_requests_total', help: 'Requests by mount, method, tool and outcome.', labelNames: ['mount', 'method', 'tool', 'outcome'], registers: [registry] });
  const denials = new Counter({ name: 'bastion_denials_total', help: 'Refused or failed requests by mount, tool and reason.', labelNames: ['mount', 'tool', 'reason'], registers: [registry] });
  const duration = new Histogram({ name: 'bastion_request_duration_seconds', help: 'End-to-end request latency through the gateway.', labelNames: ['mount', 'method'], buckets: LATENCY_BUCKETS, registers: [registry] });
  const stageDuration = new FastHistogram('bastion_stage_duration_seconds', 'Time spent in each pipeline stage.', 'stage', STAGE_BUCKETS, registry);
  const upstreamLatency = new Histogram({ name: 'bastion_upstream_duration_seconds', help: 'Upstream answer latency.', labelNames: ['mount'], buckets: LATENCY_BUCKETS, registers: [registry] });
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

  const c = {
    requests: new Map<string, Inc>(),
    denials: new Map<string, Inc>(),
    duration: new Map<string, Obs>(),
    upstream: new Map<string, Obs>(),
  };

  const observeStage = (stage: string, ms: number): void => {
    stageDuration.observe(stagesB.value(stage), ms / 1000);
  };

  return {
    registry,
    observeRequest(o) {
      const mount = mounts.value(o.mount);
      const method = methods.value(o.method);
      const tool = tools.value(o.tool);
      cached(c.requests, `${mount}\0${method}\0${tool}\0${o.outcome}`, () => requests.labels(mount, method, tool, o.outcome)).inc();
      if (o.outcome !== 'allowed') {
        const reason = reasons.value(o.reason ?? o.outcome);
        cached(c.denials, `${mount}\0${tool}\0${reason}`, () => denials.labels(mount, tool, reason)).inc();
      }
      cached(c.duration, `${mount}\0${method}`, () => duration.labels(mount, method)).observe(o.durationMs / 1000);
      if (o.stages) for (const k in o.stages) observeStage(k, o.stages[k]!);
    },
    observeStage,
    observeUpstreamLatency(mount, ms) {
      const m = mounts.value(mount);
      cached(c.upstream, m, () => upstreamLatency.labels(m)).observe(ms / 1000);
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
}

export interface MetricsResponse {
  contentType: string;
  body: string;
}

/** What the server sends for GET {metrics.path}: `res.writeHead(200, {'content-type': r.contentType}).end(r.body)`. */
export function metricsHandler(metrics: Metrics): () => Promise<MetricsResponse> {
  return async () => ({ contentType: metrics.registry.contentType, body: await metrics.registry.metrics() });
}
