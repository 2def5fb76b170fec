/**
 * The fixed order of phases. Why this order:
 * - transport first: cheap checks (Origin, Host, body size, JSON shape) refuse garbage before any
 *   cryptography runs, and DNS-rebinding requests never reach identity.
 * - identity before authorization: a decision needs a principal.
 * - authorization before application: a caller not allowed to call a tool learns nothing from
 *   argument validation or integrity errors about it.
 * - application last before upstream: pins, argument validation and output sanitizing act on
 *   messages that are already known to be allowed.
 * Upstream → client messages run back through the stages in reverse phase order (application
 * first: sanitize and pin before authorization filters lists).
 */
import type { Phase, Stage } from './context.js';

export const PHASES: readonly Phase[] = ['transport', 'identity', 'authorization', 'application', 'upstream'];

/** Sort stages by phase, keeping the given order within a phase. Throws on a duplicate name. */
export function orderStages(stages: readonly Stage[]): Stage[] {
  const seen = new Set<string>();
  for (const s of stages) {
    if (seen.has(s.name)) throw new Error(`duplicate stage name ${s.name}`);
    seen.add(s.name);
    if (!s.name.startsWith(`${s.phase}.`)) throw new Error(`stage ${s.name} must be named ${s.phase}.<step>`);
  }
  return [...stages].sort((a, b) => PHASES.indexOf(a.phase) - PHASES.indexOf(b.phase));
}
