/**
 * `identity.session`: resolve the Mcp-Session-Id after authentication, so an unauthenticated
 * caller learns nothing about which sessions exist. Missing id (other than on initialize) → 400;
 * unknown id, or a session that belongs to another principal → 404 (the same answer: a session
 * id never authorizes anything by itself).
 */
import { BastionError } from '../../errors.js';
import type { RequestContext, Stage } from '../../pipeline/context.js';
import { principalKey } from '../../identity/types.js';
import type { SessionRegistry, SharedSessionRecord } from '../../session/registry.js';
import type { Session } from '../../session/session.js';

/** Builds a local Session for a record another replica created. */
export type SessionRestorer = (ctx: RequestContext, id: string, record: SharedSessionRecord) => Session;

export function sessionStage(registry: SessionRegistry, restore?: SessionRestorer): Stage {
  return {
    name: 'identity.session',
    phase: 'identity',
    onRequest(ctx): void | Promise<void> {
      const raw = ctx.http.headers['mcp-session-id'];
      const isInitialize = ctx.message !== undefined && 'method' in ctx.message && ctx.message.method === 'initialize';
      if (raw === undefined) {
        if (isInitialize) return;
        throw new BastionError('ERR_BASTION_SESSION_MISSING', 'Bad Request: Mcp-Session-Id header is required (send initialize first)', { reason: 'session_missing' });
      }
      if (isInitialize) {
        throw new BastionError('ERR_BASTION_TRANSPORT_INVALID_REQUEST', 'Bad Request: initialize must not carry an Mcp-Session-Id', { reason: 'initialize_with_session' });
      }
      const s = typeof raw === 'string' ? registry.get(raw) : undefined;
      const owner = ctx.principal && ctx.principal.authMethod !== 'none' ? principalKey(ctx.principal) : undefined;
      if (s === undefined && typeof raw === 'string' && registry.isShared && restore) {
        return registry.lookupShared(raw).then((rec) => {
          if (!rec || rec.mount !== ctx.mount.name || rec.owner !== owner) {
            throw new BastionError('ERR_BASTION_SESSION_UNKNOWN', 'Session not found', { reason: rec ? 'session_not_owned' : 'session_unknown' });
          }
          const local = registry.get(raw) ?? restore(ctx, raw, rec);
          local.lastSeen = Date.now();
          ctx.session = local;
        });
      }
      if (s === undefined || s.ended || s.mount !== ctx.mount.name || s.owner !== owner) {
        throw new BastionError('ERR_BASTION_SESSION_UNKNOWN', 'Session not found', { reason: s === undefined ? 'session_unknown' : 'session_not_owned' });
      }
      s.lastSeen = Date.now();
      registry.touch(s);
      ctx.session = s;
    },
  };
}
