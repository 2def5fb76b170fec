/**
 * `authorization.anomaly`: applies the anomaly detector's decisions and feeds it observations.
 *
 * On each request with a principal, before policy:
 *  1. `admit`: a suspended subject is refused (ERR_BASTION_POLICY_DENIED, reason
 *     `subject_suspended`) until an operator reinstates it; a throttled one gets 429
 *     ERR_BASTION_RATE_LIMITED with Retry-After. The server audits the refusal once
 *     (tool.call.denied / request.rejected) like any other.
 *  2. the request is observed off the request path (not awaited): findings become
 *     `anomaly.detected` events, a `suspend` action also `incident.token.suspended`, and metrics.
 * On each upstream response to a tools/call, the answer time feeds the latency baseline.
 * Actions therefore take effect from the caller's next request.
 */
import { performance } from 'node:perf_hooks';
import { BastionError } from '../errors.js';
import { principalKey } from '../identity/types.js';
import type { MessageContext, RequestContext, Stage } from '../pipeline/context.js';
import type { JsonRpcMessage } from '../pipeline/messages.js';
import type { AnomalyDetector } from '../anomaly/detector.js';
import { anomalyEvent } from '../anomaly/detector.js';
import type { AnomalyDecision, CallObservation } from '../anomaly/types.js';
import type { AuditLog } from './types.js';
import { requestAuditBase } from './request.js';

export interface AnomalyStageDeps {
  detector: AnomalyDetector;
  audit: AuditLog;
  metrics?: { anomalyDetected(kind: string, action: string): void };
  /** Called when the detector fails (state store down): detection is best effort, requests go on. */
  onError?: (err: unknown) => void;
}

function subjectOf(ctx: { principal: RequestContext['principal'] }): string | undefined {
  const p = ctx.principal;
  if (!p || p.authMethod === 'none') return undefined;
  return p.tokenHash ?? principalKey(p);
}

export function anomalyStage(deps: AnomalyStageDeps): Stage {
  const { detector, audit } = deps;
  const onError = deps.onError ?? (() => undefined);

  const report = (ctx: RequestContext, d: AnomalyDecision): void => {
    const base = requestAuditBase(ctx);
    for (const f of d.findings) {
      const ev = anomalyEvent(f, base);
      audit.emit(ev);
      deps.metrics?.anomalyDetected(f.kind, f.action);
      if (f.action === 'suspend') {
        audit.emit({ type: 'incident.token.suspended', outcome: 'success', reason: f.kind, ...base, subject: f.subject, by: 'anomaly-detector' });
      }
    }
  };

  return {
    name: 'authorization.anomaly',
    phase: 'authorization',
    async onRequest(ctx) {
      const subject = subjectOf(ctx);
      if (subject === undefined) return;
      const admit = await detector.admit(subject).catch((err: unknown) => {
        onError(err);
        return { admit: true } as const;
      });
      if (!admit.admit) {
        if (admit.why === 'suspended') {
          throw new BastionError('ERR_BASTION_POLICY_DENIED', 'This credential is suspended after unusual activity; an operator must review and reinstate it', {
            reason: 'subject_suspended',
          });
        }
        const secs = Math.max(1, Math.ceil(admit.retryAfterMs / 1000));
        throw new BastionError('ERR_BASTION_RATE_LIMITED', 'Too many requests: this credential is throttled after unusual activity', {
          reason: 'anomaly_throttled',
          headers: { 'Retry-After': String(secs) },
        });
      }
      const msg = ctx.message as { method?: unknown; params?: { name?: unknown; arguments?: unknown } } | undefined;
      const method = typeof msg?.method === 'string' ? msg.method : ctx.http.method;
      const obs: CallObservation = { subject, mount: ctx.mount.name, method };
      const run = async (): Promise<void> => {
        if (method === 'tools/call' && typeof msg?.params?.name === 'string') {
          obs.tool = msg.params.name;
          const a = msg.params.arguments;
          if (a !== null && typeof a === 'object' && !Array.isArray(a)) obs.args = a as Record<string, unknown>;
          if (ctx.session) obs.known = (await ctx.session.upstreamTools()).has(msg.params.name);
        }
        report(ctx, await detector.observeCall(obs));
      };
      // Off the request path: the decision applies from the next request.
      void run().catch(onError);
    },
    onUpstreamMessage(mctx: MessageContext, m: JsonRpcMessage) {
      const req = mctx.request;
      if (req && mctx.method === 'tools/call' && 'id' in m && !('method' in m)) {
        const tool = (req.message as { params?: { name?: unknown } } | undefined)?.params?.name;
        void detector
          .observeLatency({ mount: mctx.mount.name, tool: typeof tool === 'string' ? tool : undefined, ms: performance.now() - req.startedAt })
          .then((d) => report(req, d))
          .catch(onError);
      }
      return m;
    },
  };
}
