/**
 * Fail closed when the audit trail cannot keep up: a transport stage that refuses a request with
 * 503 ERR_BASTION_AUDIT_UNAVAILABLE (Retry-After: 5) while `audit.isAccepting()` is false (queue
 * full under the `block` policy, or the log closed). Place it first in the transport phase: a
 * refused request costs one function call and emits nothing (there is no room to record it; the
 * refusals are counted in metrics by the server like any other error).
 */
import type { RequestContext, Stage } from '../pipeline/context.js';
import type { AuditLog } from './types.js';
import { auditUnavailableError } from './log.js';

export function auditGateStage(audit: AuditLog): Stage {
  return {
    name: 'transport.audit-gate',
    phase: 'transport',
    onRequest(_ctx: RequestContext): void {
      if (audit.isAccepting && !audit.isAccepting()) throw auditUnavailableError();
    },
  };
}
