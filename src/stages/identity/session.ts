/**
 * `identity.session`: resolve the Mcp-Session-Id after authentication, so an unauthenticated
 * caller learns nothing about which sessions exist. Missing id (other than on initialize) → 400;
 * unknown id, or a session that belongs to another principal → 404 (the same answer: a session
 * id never authorizes anything by itself).
 */
import { BastionError } from '../../errors.js';
import type { Stage } from '../../pipeline/context.js';
import { principalKey } from '../../identity/types.js';
import type { SessionRegistry } from '../../session/registry.js';

export function sessionStage(registry: SessionRegistry): Stage {
  return {
    name: 'identity.session',
    phase: 'identity',
    onRequest(ctx) {
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
      if (s === undefined || s.ended || s.mount !== ctx.mount.name || s.owner !== owner) {
        throw new BastionError('ERR_BASTION_SESSION_UNKNOWN', 'Session not found', { reason: s === undefined ? 'session_unknown' : 'session_not_owned' });
      }
      s.lastSeen = Date.now();
      ctx.session = s;
    },
  };
}
