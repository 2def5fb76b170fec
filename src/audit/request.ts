/**
 * Build audit events from a request context, so every emitter fills the common fields the same
 * way. Arguments go in raw: the audit log scrubs secrets and summarizes large values off the
 * request path.
 */
import { performance } from 'node:perf_hooks';
import type { RequestContext } from '../pipeline/context.js';
import { STAGE_TIMINGS, type AuditEvent, type AuditOutcome } from './types.js';

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/;

/** W3C trace context of the request, when the client sent a valid `traceparent`. */
export function traceContext(ctx: RequestContext): { traceId: string; parentSpanId: string } | undefined {
  const h = ctx.http.headers.traceparent;
  const m = typeof h === 'string' ? TRACEPARENT.exec(h.trim()) : null;
  if (!m || /^0+$/.test(m[1]!) || /^0+$/.test(m[2]!)) return undefined;
  return { traceId: m[1]!, parentSpanId: m[2]! };
}

type Base = Pick<AuditEvent, 'requestId' | 'sessionId' | 'mount' | 'clientIp' | 'principal'> & { traceId?: string; parentSpanId?: string };

/** Common fields: requestId, sessionId, mount, clientIp, principal (never the token), trace context. */
export function requestAuditBase(ctx: RequestContext): Base {
  const base: Base = {
    requestId: ctx.requestId,
    sessionId: ctx.session?.id,
    mount: ctx.mount.name,
    clientIp: ctx.http.remoteAddress,
  };
  const tc = traceContext(ctx);
  if (tc) {
    base.traceId = tc.traceId;
    base.parentSpanId = tc.parentSpanId;
  }
  const p = ctx.principal;
  if (p) base.principal = { subject: p.subject, issuer: p.issuer, clientId: p.clientId, authMethod: p.authMethod, tokenId: p.tokenId };
  return base;
}

/** Milliseconds, to the microsecond, as request records give them. */
export function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

export interface ToolCallOutcome {
  /** `completed` when the upstream answered (ok or tool error); `denied` when a stage refused. */
  kind: 'completed' | 'denied';
  outcome: AuditOutcome;
  /** `ok`, `tool_error`, `upstream_error`, `timeout` (completed). */
  status?: string;
  reason?: string;
  /** Error code sent, when any. */
  error?: string;
  /** Refusing stage and policy (denied). */
  stage?: string;
  policy?: string;
}

/** `tool.call.completed` / `tool.call.denied` for a tools/call request. */
export function toolCallEvent(ctx: RequestContext, o: ToolCallOutcome): AuditEvent {
  const msg = ctx.message as { method?: string; params?: { name?: unknown; arguments?: unknown } } | undefined;
  const e: AuditEvent = {
    type: o.kind === 'completed' ? 'tool.call.completed' : 'tool.call.denied',
    outcome: o.outcome,
    ...requestAuditBase(ctx),
    method: msg?.method ?? 'tools/call',
    tool: typeof msg?.params?.name === 'string' ? msg.params.name : undefined,
    args: msg?.params?.arguments,
    // `total` since arrival; the per-stage times go as they are, for the audit log to add (STAGE_TIMINGS).
    durations: { total: roundMs(performance.now() - ctx.startedAt) },
    [STAGE_TIMINGS]: ctx.timings,
  };
  if (o.status !== undefined) e.status = o.status;
  if (o.reason !== undefined) e.reason = o.reason;
  if (o.error !== undefined) e.error = o.error;
  if (o.stage !== undefined) e.stage = o.stage;
  if (o.policy !== undefined) e.policy = o.policy;
  return e;
}
