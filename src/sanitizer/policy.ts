/**
 * The effective policy for one message: global `sanitize`, then `servers.NAME.sanitize`, then
 * `servers.NAME.sanitize.tools.TOOL`. Each level overrides only the fields it names.
 */
import type { SanitizeGlobalConfig, SanitizeOverride, SanitizeServerConfig } from '../config/sanitize.js';
import { DEFAULT_POLICY, type SanitizePolicy } from './types.js';

function apply(base: SanitizePolicy, o: SanitizeOverride | undefined): SanitizePolicy {
  if (o === undefined) return base;
  const out: SanitizePolicy = { ...base };
  for (const k of Object.keys(DEFAULT_POLICY) as (keyof SanitizePolicy)[]) {
    const v = o[k];
    if (v !== undefined) (out as unknown as Record<string, unknown>)[k] = v;
  }
  return out;
}

export function resolvePolicy(
  global: SanitizeGlobalConfig | undefined,
  server: SanitizeServerConfig | undefined,
  tool?: string,
): SanitizePolicy {
  let p = apply({ ...DEFAULT_POLICY }, global);
  p = apply(p, server);
  if (tool !== undefined && server?.tools !== undefined && Object.prototype.hasOwnProperty.call(server.tools, tool)) {
    p = apply(p, server.tools[tool]);
  }
  return Object.freeze(p);
}
