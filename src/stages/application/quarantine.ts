/**
 * application.quarantine: tools an operator took offline (`bastion quarantine`) are hidden from
 * `tools/list` and their calls refused with ERR_BASTION_INTEGRITY_QUARANTINED, like the
 * integrity layer's held-back tools. A whole server in quarantine lists no tools, prompts or
 * resources and refuses every call, prompt and read.
 *
 * When the quarantine list changes, the sessions of that server are sent list_changed
 * notifications (containment.ts), and initialize results declare `listChanged` so clients expect them.
 *
 * The list comes from the local containment cache (no store round trip); when that cache
 * cannot be trusted, calls and lists get 503 ERR_BASTION_STATE_UNAVAILABLE (fail closed).
 */
import { BastionError } from '../../errors.js';
import type { Stage } from '../../pipeline/context.js';
import { declaredLists, isRequest, isResponse } from '../../pipeline/messages.js';
import type { Containment } from '../../containment/containment.js';

export const QUARANTINE_STAGE = 'application.quarantine';

const LISTS: Record<string, string> = {
  'tools/list': 'tools',
  'prompts/list': 'prompts',
  'resources/list': 'resources',
  'resources/templates/list': 'resourceTemplates',
};
const GUARDED = new Set(['tools/call', 'prompts/get', 'resources/read']);

/**
 * A quarantine changes what the lists hold, and the gateway then sends the session
 * `notifications/{tools,prompts,resources}/list_changed` (containment.ts): the initialize result
 * declares `listChanged` for each list the server offers, so clients listen for them.
 */
function declareListChanged<M extends { result?: unknown }>(msg: M): M {
  const result = msg.result as { capabilities?: Record<string, unknown> } | undefined;
  let next: Record<string, unknown> | undefined;
  for (const [k, c] of declaredLists(result)) {
    if (c.listChanged === true) continue;
    next ??= { ...result!.capabilities };
    next[k] = { ...c, listChanged: true };
  }
  return next ? { ...msg, result: { ...result, capabilities: next } } : msg;
}

export function quarantineStage(deps: { containment: Containment }): Stage {
  const { containment } = deps;
  return {
    name: QUARANTINE_STAGE,
    phase: 'application',
    onRequest(ctx) {
      const m = ctx.message;
      if (m === undefined || !isRequest(m) || !GUARDED.has(m.method)) return;
      const name = m.method === 'tools/call' && typeof m.params?.name === 'string' ? m.params.name : undefined;
      const q = containment.quarantineOf(ctx.mount.name, name);
      if (q === undefined) return;
      // A tool-level entry only concerns tools/call; a server-level one concerns everything here.
      if (q.tool === undefined || m.method === 'tools/call') {
        const what = q.tool === undefined ? `Server "${ctx.mount.name}"` : `Tool "${q.tool}" of server "${ctx.mount.name}"`;
        throw new BastionError('ERR_BASTION_INTEGRITY_QUARANTINED', `${what} is quarantined by an operator (incident containment) and cannot be used until it is released.`, {
          reason: 'quarantined',
          data: { server: ctx.mount.name, ...(q.tool !== undefined ? { tool: q.tool } : {}) },
        });
      }
    },
    onUpstreamMessage(ctx, msg) {
      if (!isResponse(msg) || msg.result === undefined || ctx.method === undefined) return msg;
      if (ctx.method === 'initialize') return declareListChanged(msg);
      const field = LISTS[ctx.method];
      if (field === undefined) return msg;
      const entries = containment.quarantineFor(ctx.mount.name);
      if (entries === undefined || entries.size === 0) return msg;
      const result = msg.result as Record<string, unknown>;
      const list = result[field];
      if (!Array.isArray(list)) return msg;
      if (entries.has('*')) return { ...msg, result: { ...result, [field]: [] } };
      if (field !== 'tools') return msg;
      const kept = list.filter((t) => !(t !== null && typeof t === 'object' && typeof (t as { name?: unknown }).name === 'string' && entries.has((t as { name: string }).name)));
      return kept.length === list.length ? msg : { ...msg, result: { ...result, [field]: kept } };
    },
  };
}
