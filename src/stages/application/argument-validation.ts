/**
 * application.argument-validation: every tools/call's arguments validated against the tool's
 * inputSchema as the upstream listed it (from the session's catalog, never from the client),
 * plus the operator's `args` constraints and the mount's `limits`. Unknown top-level arguments
 * are refused by default. Invalid: JSON-RPC -32602 naming the argument and the rule
 * (ERR_BASTION_POLICY_INVALID_ARGUMENTS); a schema the gateway refuses to compile (hostile or
 * broken upstream): the call fails closed (ERR_BASTION_UPSTREAM_PROTOCOL).
 * Runs after authorization: a caller learns nothing from validation about tools it cannot call.
 */
import { BastionError } from '../../errors.js';
import type { AuditLog } from '../../audit/types.js';
import { withUpstreamTools, type RequestContext, type Stage, type ToolDefinition } from '../../pipeline/context.js';
import { isRequest } from '../../pipeline/messages.js';
import type { CompiledPolicy } from '../../policy/compile.js';
import { ArgumentValidator } from '../../policy/arguments.js';
import { auditBase, invalidParams, paramsOf, toolNotFoundError } from '../authorization/shared.js';

export const ARGUMENT_VALIDATION_STAGE = 'application.argument-validation';

export interface ArgumentValidationStageDeps {
  policy: CompiledPolicy;
  audit: AuditLog;
  /** Shared validator (compiled-schema cache); default: a new one per stage. */
  validator?: ArgumentValidator;
}

export function argumentValidationStage(deps: ArgumentValidationStageDeps): Stage {
  const { policy, audit } = deps;
  const validator = deps.validator ?? new ArgumentValidator();
  return {
    name: ARGUMENT_VALIDATION_STAGE,
    phase: 'application',
    // Not async: on the hot path (catalog at hand) the stage runs without a promise.
    onRequest(ctx) {
      const msg = ctx.message;
      if (msg === undefined || !isRequest(msg) || msg.method !== 'tools/call') return;
      const params = paramsOf(ctx);
      const name = params.name;
      if (typeof name !== 'string') throw invalidParams('tools/call needs params.name, the tool name (a string)');
      if (ctx.session === undefined) {
        // Without the upstream's catalog there is nothing to validate against: fail closed.
        throw new BastionError('ERR_BASTION_SESSION_NOT_INITIALIZED', 'tools/call needs an initialized session (send initialize first)', {
          reason: 'no_catalog',
        });
      }
      return withUpstreamTools(ctx.session, (tools) => check(ctx, name, params, tools.get(name)));
    },
  };

  function check(ctx: RequestContext, name: string, params: Record<string, unknown>, def: ToolDefinition | undefined): void {
    if (def === undefined) throw toolNotFoundError(name, 'unknown');
    const mp = policy.forMount(ctx.mount.name);
    const tool = mp.tool(name);
    const res = validator.validate({
      tool: name,
      schema: def.inputSchema,
      args: params.arguments,
      limits: mp.limits,
      constraints: tool.args,
      unknownArguments: tool.unknownArguments,
    });
    if (res.ok) {
      ctx.decisions.push({ stage: ARGUMENT_VALIDATION_STAGE, outcome: 'allow' });
      return;
    }
    const reason = res.kind === 'schema_unusable' ? 'schema_unusable' : res.kind === 'invalid' ? 'invalid_arguments' : `arguments_${res.kind}`;
    ctx.decisions.push({ stage: ARGUMENT_VALIDATION_STAGE, outcome: 'deny', reason, detail: { argument: res.argument, rule: res.rule } });
    audit.emit({
      type: 'tool.call.denied',
      outcome: 'denied',
      ...auditBase(ctx),
      method: 'tools/call',
      error: res.kind === 'schema_unusable' ? 'ERR_BASTION_UPSTREAM_PROTOCOL' : 'ERR_BASTION_POLICY_INVALID_ARGUMENTS',
      reason,
      stage: ARGUMENT_VALIDATION_STAGE,
      policy: tool.args && Object.hasOwn(tool.args, res.argument) ? `servers.${ctx.mount.name}.tools.${name}.args` : 'inputSchema',
      tool: name,
      argument: res.argument,
      rule: res.rule,
    });
    if (res.kind === 'schema_unusable') {
      throw new BastionError('ERR_BASTION_UPSTREAM_PROTOCOL', `Tool ${name} cannot be called: ${res.message}`, { reason });
    }
    throw new BastionError('ERR_BASTION_POLICY_INVALID_ARGUMENTS', `Invalid arguments for tool ${name}: ${res.message}`, {
      reason,
      data: { argument: res.argument, rule: res.rule },
    });
  }
}
