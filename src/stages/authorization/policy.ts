/**
 * authorization.policy: one decision function for lists and calls, so they always agree.
 *
 * onRequest enforces tools/call, resources/read|subscribe|unsubscribe, prompts/get and
 * completion/complete (which names a prompt or a resource template):
 * - allowed: passes, with the decision recorded;
 * - refused only for missing scopes (step-up on): 403 insufficient_scope with the scopes to ask for;
 * - anything else, or a tool that does not exist in the upstream's catalog: answered exactly like
 *   a call to a tool that does not exist (the gateway answers unknown tools itself, so the two
 *   are indistinguishable on the wire). The audit record says which policy refused.
 * onUpstreamMessage filters tools/list, resources/list, resources/templates/list and prompts/list
 * results with the same decision (items refused only for scopes stay listed).
 */
import { toWire, type BastionError } from '../../errors.js';
import type { AuditLog } from '../../audit/types.js';
import type { Config } from '../../config/schema.js';
import { withUpstreamTools, type MessageContext, type RequestContext, type Stage } from '../../pipeline/context.js';
import { isRequest, isResponse, type JsonRpcMessage, type JsonRpcResponse } from '../../pipeline/messages.js';
import { ANONYMOUS, type Principal } from '../../identity/types.js';
import { insufficientScopeError } from '../../identity/challenges.js';
import { resourceMetadataUrl } from '../../identity/resource.js';
import type { CompiledPolicy } from '../../policy/compile.js';
import { isVisible, type Decision, type PolicyAction } from '../../policy/types.js';
import {
  auditBase,
  invalidParams,
  paramsOf,
  principalOf,
  promptNotFoundError,
  resourceNotFoundError,
  toolNotFoundError,
} from './shared.js';

export const POLICY_STAGE = 'authorization.policy';

export interface PolicyStageDeps {
  policy: CompiledPolicy;
  audit: AuditLog;
  /** For the DPoP variant of the step-up challenge (auth.dpop.algorithms, servers.NAME.auth.dpop). */
  config?: Pick<Config, 'auth' | 'servers'>;
  /** Milliseconds since epoch (token age rules). */
  now?: () => number;
}

/** What the stage leaves in ctx.locals['authorization.policy'] for later stages. */
export interface PolicyLocals {
  action: PolicyAction;
  target: string;
  decision: Decision;
}

const LISTS: Record<string, { field: string; key: string; action: PolicyAction }> = {
  'tools/list': { field: 'tools', key: 'name', action: 'tools/call' },
  'resources/list': { field: 'resources', key: 'uri', action: 'resources/read' },
  'resources/templates/list': { field: 'resourceTemplates', key: 'uriTemplate', action: 'resources/read' },
  'prompts/list': { field: 'prompts', key: 'name', action: 'prompts/get' },
};

const DENIED_EVENT: Record<PolicyAction, string> = {
  'tools/call': 'tool.call.denied',
  'resources/read': 'resource.read.denied',
  'prompts/get': 'prompt.get.denied',
};

const NOT_FOUND = /not found|unknown|does not exist|no such/i;

/**
 * The upstream's own "not found" answer to resources/read or prompts/get is replaced by the
 * gateway's, so a hidden item and a missing one look the same whatever the upstream says
 * (the MCP SDK answers a missing resource with -32602, the specification with -32002).
 */
function normalizeNotFound(ctx: MessageContext, msg: JsonRpcResponse): JsonRpcMessage {
  const e = msg.error!;
  const method = ctx.method;
  if (method !== 'resources/read' && method !== 'prompts/get') return msg;
  if (!(e.code === -32002 || (e.code === -32602 && NOT_FOUND.test(e.message)))) return msg;
  const req = ctx.request?.message as { params?: Record<string, unknown> } | undefined;
  const p = req?.params ?? {};
  const err =
    method === 'resources/read'
      ? typeof p.uri === 'string'
        ? resourceNotFoundError(p.uri, 'unknown')
        : undefined
      : typeof p.name === 'string'
        ? promptNotFoundError(p.name, 'unknown')
        : undefined;
  if (err === undefined) return msg;
  const wire = toWire(err, msg.id);
  return { jsonrpc: '2.0', id: msg.id, error: wire.body.error };
}

export function policyStage(deps: PolicyStageDeps): Stage {
  const now = deps.now ?? Date.now;
  const { policy, audit } = deps;

  function stepUp(ctx: RequestContext, principal: Principal, d: Decision) {
    const mountAuth = deps.config?.servers[ctx.mount.name]?.auth as { dpop?: 'required' | 'optional' } | undefined;
    const usesDpop = principal.authMethod === 'dpop' || principal.authMethod === 'mtls+dpop';
    return insufficientScopeError(resourceMetadataUrl(ctx.mount.resource), principal.scopes, d.requiredScopes, {
      scheme: usesDpop ? 'DPoP' : 'Bearer',
      ...(mountAuth?.dpop ? { dpop: mountAuth.dpop } : {}),
      dpopAlgorithms: deps.config?.auth?.dpop?.algorithms ?? [],
    });
  }

  function refuse(ctx: RequestContext, action: PolicyAction, target: string, d: Decision | undefined, reason: string, policyId: string, error: string): void {
    const key = action === 'resources/read' ? 'uri' : action === 'tools/call' ? 'tool' : 'prompt';
    // The name comes from the client: bounded before it goes on the record.
    if (target.length > 512) target = `${target.slice(0, 512)}…`;
    ctx.decisions.push({ stage: POLICY_STAGE, outcome: 'deny', reason, detail: { policy: policyId, [key]: target } });
    audit.emit({
      type: DENIED_EVENT[action],
      outcome: 'denied',
      ...auditBase(ctx),
      method: (ctx.message as { method?: string } | undefined)?.method,
      reason,
      stage: POLICY_STAGE,
      policy: policyId,
      error,
      [key]: target,
      ...(d?.missingScopes.length ? { missingScopes: [...d.missingScopes] } : {}),
      ...(d?.detail ? { detail: d.detail } : {}),
    });
  }

  function enforce(ctx: RequestContext, action: PolicyAction, target: string, exists: boolean, notFound: (reason: string) => BastionError): void {
    const principal = principalOf(ctx);
    const params = paramsOf(ctx);
    const args = action === 'tools/call' && typeof params.arguments === 'object' && params.arguments !== null ? (params.arguments as Record<string, unknown>) : undefined;
    const d = policy.forMount(ctx.mount.name).decide(principal, action, target, {
      clientIp: ctx.http.remoteAddress,
      now: now(),
      arguments: action === 'tools/call' ? (args ?? {}) : undefined,
    });
    if (!exists) {
      const err = notFound('unknown');
      refuse(ctx, action, target, undefined, 'unknown', 'upstream-catalog', err.code);
      throw err;
    }
    if (d.outcome === 'hide') {
      const err = notFound(d.reason);
      refuse(ctx, action, target, d, d.reason, d.policy, err.code);
      throw err;
    }
    if (d.outcome === 'step-up') {
      const err = stepUp(ctx, principal, d);
      refuse(ctx, action, target, d, 'insufficient_scope', d.policy, err.code);
      throw err;
    }
    ctx.decisions.push({ stage: POLICY_STAGE, outcome: 'allow', reason: d.reason, detail: { policy: d.policy } });
    const locals: PolicyLocals = { action, target, decision: d };
    ctx.locals[POLICY_STAGE] = locals;
  }

  return {
    name: POLICY_STAGE,
    phase: 'authorization',
    // Not async: on the hot path (catalog at hand) the stage runs without a promise.
    onRequest(ctx) {
      const msg = ctx.message;
      if (msg === undefined || !isRequest(msg)) return;
      const params = paramsOf(ctx);
      switch (msg.method) {
        case 'tools/call': {
          const name = params.name;
          if (typeof name !== 'string') throw invalidParams('tools/call needs params.name, the tool name (a string)');
          // The gateway answers unknown tools itself: the same answer as for a hidden tool.
          const check = (exists: boolean): void => enforce(ctx, 'tools/call', name, exists, (r) => toolNotFoundError(name, r));
          if (ctx.session === undefined) return check(true);
          return withUpstreamTools(ctx.session, (tools) => check(tools.has(name)));
        }
        case 'resources/read':
        case 'resources/subscribe':
        case 'resources/unsubscribe': {
          const uri = params.uri;
          if (typeof uri !== 'string') throw invalidParams(`${msg.method} needs params.uri (a string)`);
          enforce(ctx, 'resources/read', uri, true, (r) => resourceNotFoundError(uri, r));
          return;
        }
        case 'prompts/get': {
          const name = params.name;
          if (typeof name !== 'string') throw invalidParams('prompts/get needs params.name, the prompt name (a string)');
          enforce(ctx, 'prompts/get', name, true, (r) => promptNotFoundError(name, r));
          return;
        }
        case 'completion/complete': {
          // Completion names a prompt or a resource template: it must not reveal hidden ones.
          const ref = params.ref as { type?: unknown; name?: unknown; uri?: unknown } | undefined;
          if (ref?.type === 'ref/prompt' && typeof ref.name === 'string') {
            const name = ref.name;
            enforce(ctx, 'prompts/get', name, true, (r) => promptNotFoundError(name, r));
          } else if (ref?.type === 'ref/resource' && typeof ref.uri === 'string') {
            const uri = ref.uri;
            enforce(ctx, 'resources/read', uri, true, (r) => resourceNotFoundError(uri, r));
          } else {
            throw invalidParams('completion/complete needs params.ref of type ref/prompt (with name) or ref/resource (with uri)');
          }
          return;
        }
        default:
          return;
      }
    },

    onUpstreamMessage(ctx: MessageContext, msg: JsonRpcMessage): JsonRpcMessage {
      if (!isResponse(msg) || ctx.method === undefined) return msg;
      if (msg.error !== undefined) return normalizeNotFound(ctx, msg);
      if (msg.result === undefined) return msg;
      const list = LISTS[ctx.method];
      if (list === undefined) return msg;
      const principal = ctx.principal ?? ANONYMOUS;
      const mount = policy.forMount(ctx.mount.name);
      const context = { clientIp: ctx.request?.http.remoteAddress, now: now(), arguments: undefined };
      const items = msg.result[list.field];
      const kept: unknown[] = [];
      if (Array.isArray(items)) {
        for (const item of items) {
          if (typeof item !== 'object' || item === null) continue;
          const target = (item as Record<string, unknown>)[list.key];
          if (typeof target !== 'string') continue;
          if (isVisible(mount.decide(principal, list.action, target, context))) kept.push(item);
        }
      }
      // A hostile upstream's non-array list becomes an empty one (fail closed).
      const out: JsonRpcResponse = { ...msg, result: { ...msg.result, [list.field]: kept } };
      return out;
    },
  };
}
