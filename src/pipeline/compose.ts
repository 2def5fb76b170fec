/**
 * The runners. Short on purpose: sync stages cost a function call, async ones one await.
 */
import { performance } from 'node:perf_hooks';
import type { MessageContext, RequestContext, Stage } from './context.js';
import type { JsonRpcMessage } from './messages.js';
import { orderStages } from './phases.js';

export interface Pipeline {
  readonly stages: readonly Stage[];
  runRequest(ctx: RequestContext): Promise<void>;
  runUpstreamMessage(ctx: MessageContext, msg: JsonRpcMessage): Promise<JsonRpcMessage | null>;
}

export function composePipeline(stages: readonly Stage[]): Pipeline {
  const ordered = orderStages(stages);
  const req = ordered.filter((s) => s.onRequest);
  // Response path: reverse phase order (application first).
  const res = [...ordered].reverse().filter((s) => s.onUpstreamMessage);
  return {
    stages: ordered,
    async runRequest(ctx) {
      // Per-stage milliseconds feed the audit record, the OTLP spans and the stage histogram.
      // One clock reading per stage boundary: a stage's time runs from the end of the previous one.
      const timings = ctx.timings;
      let t0 = performance.now();
      for (let i = 0; i < req.length; i++) {
        const stage = req[i]!;
        const r = stage.onRequest!(ctx);
        if (r !== undefined) await r;
        const t1 = performance.now();
        timings[stage.name] = t1 - t0;
        t0 = t1;
      }
    },
    async runUpstreamMessage(ctx, msg) {
      let m: JsonRpcMessage | null = msg;
      for (let i = 0; i < res.length && m !== null; i++) {
        const r: JsonRpcMessage | null | Promise<JsonRpcMessage | null> = res[i]!.onUpstreamMessage!(ctx, m);
        m = r instanceof Promise ? await r : r;
      }
      return m;
    },
  };
}
