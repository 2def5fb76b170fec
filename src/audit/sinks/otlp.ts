/**
 * OpenTelemetry export over OTLP/HTTP with the JSON encoding: every audit event is a log record
 * (POST {endpoint}/v1/logs); every event that carries per-stage `durations` also becomes a trace
 * (POST {endpoint}/v1/traces): one SERVER span for the request with one child span per pipeline
 * stage, laid end to end in pipeline order. The trace id derives from the request id (or the
 * event's `traceId` when the request carried a W3C traceparent), so logs and spans correlate.
 *
 * Response handling: network errors and every status except 400/413/415/422 are retried (the
 * queue keeps the batch: wider than the OTLP spec's 429/502/503/504 because an audit trail should
 * survive a credential fix); those four are permanent and the batch is dropped with a count.
 * A retry after the logs went through but the traces failed re-sends the logs: receivers can
 * de-duplicate on the `event.id` attribute.
 */
import { createHash } from 'node:crypto';
import { SinkRejectedError } from '../log.js';
import { safeMessage, sinkUrl } from './http-url.js';
import type { AuditEvent, AuditSink } from '../types.js';

export interface OtlpAuditSinkOptions {
  endpoint: string;
  headers?: Record<string, string>;
  traces?: boolean;
  serviceName?: string;
  timeoutMs?: number;
  name?: string;
}

type AnyValue = { stringValue: string } | { intValue: string } | { doubleValue: number } | { boolValue: boolean };
interface KeyValue {
  key: string;
  value: AnyValue;
}

function attr(key: string, v: unknown): KeyValue | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return { key, value: { stringValue: v } };
  if (typeof v === 'boolean') return { key, value: { boolValue: v } };
  if (typeof v === 'number') return Number.isInteger(v) ? { key, value: { intValue: String(v) } } : { key, value: { doubleValue: v } };
  return { key, value: { stringValue: JSON.stringify(v) } };
}

function attrs(pairs: Array<[string, unknown]>): KeyValue[] {
  const out: KeyValue[] = [];
  for (const [k, v] of pairs) {
    const a = attr(k, v);
    if (a) out.push(a);
  }
  return out;
}

function nanos(ms: number): string {
  return (BigInt(Math.round(ms * 1000)) * 1000n).toString();
}

function hexId(seed: string, bytes: number): string {
  return createHash('sha256').update(seed).digest('hex').slice(0, bytes * 2);
}

const SEVERITY: Record<string, [number, string]> = {
  info: [9, 'INFO'],
  success: [9, 'INFO'],
  denied: [13, 'WARN'],
  failure: [13, 'WARN'],
};

function eventMs(e: AuditEvent): number {
  const t = typeof e.time === 'string' ? Date.parse(e.time) : NaN;
  return Number.isFinite(t) ? t : Date.now();
}

function traceIdOf(e: AuditEvent): string | undefined {
  if (typeof e.traceId === 'string' && /^[0-9a-f]{32}$/.test(e.traceId) && !/^0+$/.test(e.traceId)) return e.traceId;
  if (typeof e.requestId === 'string') return hexId(`trace:${e.requestId}`, 16);
  return undefined;
}

function commonAttrs(e: AuditEvent): KeyValue[] {
  return attrs([
    ['event.name', e.type],
    ['event.id', e.id],
    ['event.outcome', e.outcome],
    ['event.reason', e.reason],
    ['http.request.id', e.requestId],
    ['session.id', e.sessionId],
    ['mcp.mount', e.mount],
    ['client.address', e.clientIp],
    ['user.id', e.principal?.subject],
    ['user.issuer', e.principal?.issuer],
    ['mcp.tool.name', typeof e.tool === 'string' ? e.tool : undefined],
    ['rpc.method', typeof e.method === 'string' ? e.method : undefined],
  ]);
}

export function toOtlpLogs(events: readonly AuditEvent[], serviceName: string): unknown {
  const observed = nanos(Date.now());
  return {
    resourceLogs: [
      {
        resource: { attributes: attrs([['service.name', serviceName]]) },
        scopeLogs: [
          {
            scope: { name: 'mcp-bastion.audit' },
            logRecords: events.map((e) => {
              const [sevNum, sevText] = e.type === 'anomaly.detected' || e.type.startsWith('incident.') ? [17, 'ERROR'] : (SEVERITY[e.outcome] ?? [9, 'INFO']);
              const rec: Record<string, unknown> = {
                timeUnixNano: nanos(eventMs(e)),
                observedTimeUnixNano: observed,
                severityNumber: sevNum,
                severityText: sevText,
                eventName: e.type,
                body: { stringValue: JSON.stringify(e) },
                attributes: commonAttrs(e),
              };
              const traceId = traceIdOf(e);
              if (traceId && typeof e.durations === 'object' && e.durations !== null) {
                rec.traceId = traceId;
                rec.spanId = hexId(`span:${traceId}:root`, 8);
              }
              return rec;
            }),
          },
        ],
      },
    ],
  };
}

/** One SERVER span per request event with `durations`, a child INTERNAL span per stage. */
export function toOtlpTraces(events: readonly AuditEvent[], serviceName: string): { resourceSpans: unknown[] } | undefined {
  const spans: unknown[] = [];
  for (const e of events) {
    const d = e.durations;
    if (typeof d !== 'object' || d === null) continue;
    const traceId = traceIdOf(e);
    if (!traceId) continue;
    const stages = Object.entries(d as Record<string, unknown>).filter(
      (kv): kv is [string, number] => kv[0] !== 'total' && typeof kv[1] === 'number' && Number.isFinite(kv[1]) && kv[1] >= 0,
    );
    const stageSum = stages.reduce((a, [, v]) => a + v, 0);
    const totalRaw = (d as Record<string, unknown>).total;
    const total = typeof totalRaw === 'number' && Number.isFinite(totalRaw) && totalRaw >= stageSum ? totalRaw : stageSum;
    const end = eventMs(e);
    const start = end - total;
    const rootId = hexId(`span:${traceId}:root`, 8);
    const failed = e.outcome === 'failure' || e.outcome === 'denied';
    const parent = typeof e.parentSpanId === 'string' && /^[0-9a-f]{16}$/.test(e.parentSpanId) && e.traceId === traceId ? e.parentSpanId : undefined;
    spans.push({
      traceId,
      spanId: rootId,
      ...(parent ? { parentSpanId: parent } : {}),
      name: `${typeof e.method === 'string' ? e.method : e.type}${typeof e.tool === 'string' ? ` ${e.tool}` : ''}`,
      kind: 2,
      startTimeUnixNano: nanos(start),
      endTimeUnixNano: nanos(end),
      attributes: commonAttrs(e),
      status: failed ? { code: 2, message: typeof e.reason === 'string' ? e.reason : e.outcome } : { code: 1 },
    });
    let t = start;
    for (const [stage, ms] of stages) {
      spans.push({
        traceId,
        spanId: hexId(`span:${traceId}:${stage}`, 8),
        parentSpanId: rootId,
        name: stage,
        kind: 1,
        startTimeUnixNano: nanos(t),
        endTimeUnixNano: nanos(t + ms),
        attributes: attrs([['bastion.stage', stage]]),
      });
      t += ms;
    }
  }
  if (spans.length === 0) return undefined;
  return {
    resourceSpans: [{ resource: { attributes: attrs([['service.name', serviceName]]) }, scopeSpans: [{ scope: { name: 'mcp-bastion.pipeline' }, spans }] }],
  };
}

export class OtlpAuditSink implements AuditSink {
  readonly name: string;
  private readonly base: string;
  /** The endpoint without credentials or query, for messages. */
  private readonly shown: string;
  private readonly opts: OtlpAuditSinkOptions;
  private readonly auth: string | undefined;

  constructor(options: OtlpAuditSinkOptions) {
    this.opts = options;
    const su = sinkUrl(options.endpoint);
    this.base = su.url.replace(/\/+$/, '');
    this.shown = su.shown.replace(/\/+$/, '');
    this.auth = su.authorization;
    this.name = options.name ?? `otlp:${new URL(su.url).origin}`;
  }

  private async post(path: string, body: unknown): Promise<void> {
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, {
        method: 'POST',
        headers: { ...(this.auth ? { authorization: this.auth } : {}), ...this.opts.headers, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000),
      });
    } catch (err) {
      throw new Error(`OTLP export to ${this.shown}${path} failed: ${safeMessage(err, [this.opts.endpoint, `${this.base}${path}`], this.shown)}`);
    }
    await res.arrayBuffer().catch(() => undefined);
    if (res.ok) return;
    if (res.status === 400 || res.status === 413 || res.status === 415 || res.status === 422) {
      throw new SinkRejectedError(`OTLP receiver ${this.shown}${path} refused the batch with ${res.status} (the payload itself was refused; not retried)`);
    }
    // 429/502/503/504 per the OTLP spec, and also 401/403/404/5xx: an audit trail keeps the batch
    // while an operator fixes credentials or the address.
    throw new Error(`OTLP receiver ${this.shown}${path} answered ${res.status}; will retry`);
  }

  async write(events: readonly AuditEvent[]): Promise<void> {
    const service = this.opts.serviceName ?? 'mcp-bastion';
    await this.post('/v1/logs', toOtlpLogs(events, service));
    if (this.opts.traces !== false) {
      const traces = toOtlpTraces(events, service);
      if (traces) await this.post('/v1/traces', traces);
    }
  }

  async close(): Promise<void> {}
}
