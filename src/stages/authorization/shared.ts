/**
 * What the authorization and argument-validation stages share: the "does not exist" answers
 * (one function each, so a hidden item and a nonexistent one get byte-identical errors), the
 * audit record of a refusal, and reading a request's target.
 */
import { BastionError } from '../../errors.js';
import type { AuditEvent } from '../../audit/types.js';
import type { RequestContext } from '../../pipeline/context.js';
import { ANONYMOUS, type Principal } from '../../identity/types.js';

const MAX_ECHO = 256;

function echo(name: string): string {
  return name.length > MAX_ECHO ? `${name.slice(0, MAX_ECHO)}…` : name;
}

/**
 * The answer to a tools/call naming a tool the caller may not see, or one that does not exist:
 * the same code, message and (absent) data either way. `reason` is for audit only (never sent).
 */
export function toolNotFoundError(name: string, reason: string): BastionError {
  return new BastionError('ERR_BASTION_POLICY_TOOL_NOT_FOUND', `Tool ${echo(name)} not found`, { reason });
}

/** prompts/get of a hidden prompt: the shape MCP servers use for an unknown prompt (-32602). */
export function promptNotFoundError(name: string, reason: string): BastionError {
  return new BastionError('ERR_BASTION_POLICY_DENIED', `Prompt ${echo(name)} not found`, { reason });
}

/** resources/read of a hidden resource: MCP's "Resource not found" (-32002) with the URI. */
export function resourceNotFoundError(uri: string, reason: string): BastionError {
  return new BastionError('ERR_BASTION_POLICY_RESOURCE_NOT_FOUND', 'Resource not found', { reason, data: { uri: echo(uri) } });
}

export function principalOf(ctx: RequestContext): Principal {
  return ctx.principal ?? ANONYMOUS;
}

/** The common fields of an audit event about this request. */
export function auditBase(ctx: RequestContext): Omit<AuditEvent, 'type' | 'outcome'> {
  const p = ctx.principal;
  return {
    requestId: ctx.requestId,
    sessionId: ctx.session?.id,
    mount: ctx.mount.name,
    clientIp: ctx.http.remoteAddress,
    ...(p
      ? { principal: { subject: p.subject, issuer: p.issuer, clientId: p.clientId, authMethod: p.authMethod, tokenId: p.tokenId } }
      : {}),
  };
}

export function paramsOf(ctx: RequestContext): Record<string, unknown> {
  const m = ctx.message as { params?: unknown } | undefined;
  const p = m?.params;
  return typeof p === 'object' && p !== null && !Array.isArray(p) ? (p as Record<string, unknown>) : {};
}

export function invalidParams(message: string): BastionError {
  return new BastionError('ERR_BASTION_POLICY_INVALID_ARGUMENTS', message, { reason: 'invalid_params' });
}
