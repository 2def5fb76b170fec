/**
 * identity.revocation: refuses a principal on the operator's deny-list (token id, token hash,
 * subject, client, certificate thumbprint) with 401 `invalid_token`, right after
 * identity.authenticate. The check reads the local cache kept fresh by pub/sub (no store round
 * trip); when the cache cannot be trusted (store unreachable) it answers 503
 * ERR_BASTION_STATE_UNAVAILABLE: fail closed.
 */
import type { Stage } from '../../pipeline/context.js';
import type { AuditLog } from '../../audit/types.js';
import type { Containment } from '../../containment/containment.js';
import { invalidTokenError, mountChallengeTarget } from '../../identity/challenges.js';
import { requestAuditBase } from '../../audit/request.js';
import { isBastionError } from '../../errors.js';
import type { Config } from '../../config/schema.js';

export const REVOCATION_STAGE = 'identity.revocation';

export interface RevocationStageDeps {
  containment: Containment;
  audit: AuditLog;
  config: Readonly<Config>;
}

export function revocationStage(deps: RevocationStageDeps): Stage {
  const { containment, audit } = deps;
  return {
    name: REVOCATION_STAGE,
    phase: 'identity',
    onRequest(ctx) {
      const p = ctx.principal;
      if (p === undefined || p.authMethod === 'none') return;
      let revoked;
      try {
        revoked = containment.revocationOf(p);
      } catch (e) {
        const reason = isBastionError(e) ? e.reason : 'internal_error';
        ctx.decisions.push({ stage: REVOCATION_STAGE, outcome: 'deny', reason });
        audit.emit({
          type: 'auth.failed',
          outcome: 'failure',
          reason,
          ...requestAuditBase(ctx),
          authMethod: p.authMethod,
          error: isBastionError(e) ? e.code : 'ERR_BASTION_INTERNAL',
          status: isBastionError(e) ? e.status : 500,
        });
        throw e;
      }
      if (revoked === undefined) return;
      ctx.decisions.push({ stage: REVOCATION_STAGE, outcome: 'deny', reason: 'token_revoked', detail: { kind: revoked.kind } });
      const err = invalidTokenError(
        mountChallengeTarget(ctx.mount.resource, ctx.mount.config.auth, deps.config.auth.dpop.algorithms),
        'token_revoked',
        'the token or its holder has been revoked',
        p.authMethod.includes('dpop') ? 'DPoP' : 'Bearer',
      );
      audit.emit({
        type: 'auth.failed',
        outcome: 'failure',
        reason: 'token_revoked',
        ...requestAuditBase(ctx),
        authMethod: p.authMethod,
        error: err.code,
        status: err.status,
      });
      throw err;
    },
  };
}
