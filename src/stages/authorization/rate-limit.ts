/**
 * authorization.rate-limit: token buckets per token, subject, client IP (global and per mount),
 * per mount, and per tool, in the state store (atomic `takeToken`, so concurrent requests are
 * never over-admitted and several replicas share counters with a shared store).
 * Over a limit: HTTP 429 with Retry-After (ERR_BASTION_RATE_LIMITED) and a `rate_limit.exceeded`
 * audit event. A store that cannot be reached fails the request (fail closed).
 *
 * Place it BEFORE authorization.policy: floods are refused before any other work. A tool's own
 * limit is only applied when the call would be allowed (same decision as the policy stage), so a
 * 429 never tells a caller that a hidden tool exists.
 *
 * The limits per client IP (`rateLimit.perClientIp`, `servers.NAME.rateLimit.perClientIp`) are a
 * stage of their own, `transport.client-ip-rate-limit`, in the transport phase: they need no
 * principal, so they count every request, credentials or not, before identity verifies anything.
 * A client flooding the gateway with bad tokens gets 429s, not a signature check per request.
 */
import { createHash } from 'node:crypto';
import { BastionError } from '../../errors.js';
import type { AuditLog } from '../../audit/types.js';
import type { StateStore } from '../../stores/types.js';
import { withUpstreamTools, type RequestContext, type Stage } from '../../pipeline/context.js';
import { isRequest } from '../../pipeline/messages.js';
import type { CompiledPolicy } from '../../policy/compile.js';
import type { RateSpec } from '../../policy/types.js';
import { auditBase, paramsOf, principalOf } from './shared.js';

export const RATE_LIMIT_STAGE = 'authorization.rate-limit';
export const CLIENT_IP_RATE_LIMIT_STAGE = 'transport.client-ip-rate-limit';

export interface RateLimitStageDeps {
  policy: CompiledPolicy;
  store: StateStore;
  audit: AuditLog;
  /** Milliseconds since epoch (for the tool decision's token-age rules). */
  now?: () => number;
  /** Key prefix in the store (default `rl:`). */
  prefix?: string;
}

/** Stable, bounded key part for an identity string (subjects can be long and hold anything). */
function h(s: string): string {
  return createHash('sha256').update(s).digest('base64url').slice(0, 22);
}

interface Check {
  /** Which limit, for messages and audit: `global.perClientIp`, `servers.notes.tools.x.rateLimit`. */
  limit: string;
  key: string;
  spec: RateSpec;
}

export function rateLimitStage(deps: RateLimitStageDeps): Stage {
  const { policy, store, audit } = deps;
  const now = deps.now ?? Date.now;
  const prefix = deps.prefix ?? 'rl:';
  const g = policy.globalRates;

  /** The limits this request counts against: synchronous unless the catalog must be fetched. */
  function collect(ctx: RequestContext): Check[] | Promise<Check[]> {
    const checks: Check[] = [];
    const p = ctx.principal;
    const ip = ctx.http.remoteAddress;
    const subjectKey = p !== undefined && p.authMethod !== 'none' ? h(`${p.issuer}\u0000${p.subject}`) : undefined;
    const tokenKey = p?.tokenHash;
    if (g.perSubject && subjectKey) checks.push({ limit: 'rateLimit.perSubject', key: `${prefix}g:sub:${subjectKey}`, spec: g.perSubject });
    if (g.perToken && tokenKey) checks.push({ limit: 'rateLimit.perToken', key: `${prefix}g:tok:${tokenKey}`, spec: g.perToken });
    const mountName = ctx.mount.name;
    const mp = policy.forMount(mountName);
    const m = mp.rates;
    const base = `servers.${mountName}.rateLimit`;
    if (m.total) checks.push({ limit: `${base}.total`, key: `${prefix}m:${mountName}:all`, spec: m.total });
    if (m.perSubject && subjectKey) checks.push({ limit: `${base}.perSubject`, key: `${prefix}m:${mountName}:sub:${subjectKey}`, spec: m.perSubject });
    if (m.perToken && tokenKey) checks.push({ limit: `${base}.perToken`, key: `${prefix}m:${mountName}:tok:${tokenKey}`, spec: m.perToken });

    const msg = ctx.message;
    if (msg !== undefined && isRequest(msg) && msg.method === 'tools/call') {
      const params = paramsOf(ctx);
      const name = params.name;
      if (typeof name === 'string') {
        const rate = mp.tool(name).rate;
        if (rate !== undefined) {
          const principal = principalOf(ctx);
          const d = mp.decide(principal, 'tools/call', name, { clientIp: ip, now: now(), arguments: undefined });
          // Only a call that would go ahead counts: a hidden tool must not answer 429.
          const addTool = (exists: boolean): Check[] => {
            if (!(d.outcome === 'allow' && exists)) return checks;
            let who: string | undefined;
            switch (rate.per) {
              case 'all':
                who = 'all';
                break;
              case 'client-ip':
                who = `ip:${ip}`;
                break;
              case 'token':
                who = tokenKey ? `tok:${tokenKey}` : `ip:${ip}`;
                break;
              default:
                who = subjectKey ? `sub:${subjectKey}` : `ip:${ip}`;
            }
            checks.push({ limit: `servers.${mountName}.tools.${name}.rateLimit`, key: `${prefix}t:${mountName}:${h(name)}:${who}`, spec: rate.spec });
            return checks;
          };
          if (ctx.session === undefined) return addTool(true);
          return withUpstreamTools(ctx.session, (tools) => addTool(tools.has(name)));
        }
      }
    }
    return checks;
  }

  return {
    name: RATE_LIMIT_STAGE,
    phase: 'authorization',
    // Not async: with no limit to count (the common case) the stage costs no promise.
    onRequest(ctx) {
      const checks = collect(ctx);
      if (checks instanceof Promise) return checks.then((c) => take(ctx, c));
      if (checks.length === 0) return;
      return take(ctx, checks);
    },
  };

  function take(ctx: RequestContext, checks: readonly Check[]): Promise<void> {
    return takeAll(store, audit, RATE_LIMIT_STAGE, ctx, checks);
  }
}

/**
 * transport.client-ip-rate-limit: the per-client-IP buckets (global, then the mount's), counted
 * for every request before identity runs (see the header). Same store, keys, 429 and audit as the
 * other limits.
 */
export function clientIpRateLimitStage(deps: RateLimitStageDeps): Stage {
  const { policy, store, audit } = deps;
  const prefix = deps.prefix ?? 'rl:';
  const g = policy.globalRates;
  return {
    name: CLIENT_IP_RATE_LIMIT_STAGE,
    phase: 'transport',
    onRequest(ctx) {
      const ip = ctx.http.remoteAddress;
      const mountName = ctx.mount.name;
      const m = policy.forMount(mountName).rates;
      if (g.perClientIp === undefined && m.perClientIp === undefined) return;
      const checks: Check[] = [];
      if (g.perClientIp) checks.push({ limit: 'rateLimit.perClientIp', key: `${prefix}g:ip:${ip}`, spec: g.perClientIp });
      if (m.perClientIp) checks.push({ limit: `servers.${mountName}.rateLimit.perClientIp`, key: `${prefix}m:${mountName}:ip:${ip}`, spec: m.perClientIp });
      return takeAll(store, audit, CLIENT_IP_RATE_LIMIT_STAGE, ctx, checks);
    },
  };
}

/** Take one token from each bucket in turn; the first empty one refuses the request (429, audited). */
async function takeAll(store: StateStore, audit: AuditLog, stage: string, ctx: RequestContext, checks: readonly Check[]): Promise<void> {
  for (const c of checks) {
    const r = await store.takeToken(c.key, { ratePerSecond: c.spec.ratePerSecond, burst: c.spec.burst });
    if (r.allowed) continue;
    const seconds = Number.isFinite(r.retryAfterMs) ? Math.max(1, Math.ceil(r.retryAfterMs / 1000)) : 3600;
    ctx.decisions.push({ stage, outcome: 'deny', reason: 'rate_limited', detail: { limit: c.limit } });
    const base = auditBase(ctx);
    audit.emit({
      type: 'rate_limit.exceeded',
      outcome: 'denied',
      ...base,
      reason: 'rate_limited',
      stage,
      limit: c.limit,
      rate: c.spec.text,
      retryAfterMs: seconds * 1000,
    });
    const msg = ctx.message;
    const tool = paramsOf(ctx).name;
    if (msg !== undefined && isRequest(msg) && msg.method === 'tools/call' && typeof tool === 'string') {
      audit.emit({
        type: 'tool.call.denied',
        outcome: 'denied',
        ...base,
        method: 'tools/call',
        tool,
        reason: 'rate_limited',
        stage,
        policy: c.limit,
        error: 'ERR_BASTION_RATE_LIMITED',
      });
    }
    throw new BastionError('ERR_BASTION_RATE_LIMITED', `Rate limit exceeded (${c.limit}: ${c.spec.text}); retry after ${seconds} s`, {
      reason: 'rate_limited',
      headers: { 'Retry-After': String(seconds) },
      data: { retryAfterSeconds: seconds },
    });
  }
}
