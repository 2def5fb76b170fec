/** Authorization layer: what can be inferred from outside without calling any tool. */
import { control } from './controls.js';
import type { IdentityFacts } from './identity.js';
import type { Listing } from './tools.js';
import { emptyLayer, type LayerResult } from './types.js';

export function checkAuthorization(facts: IdentityFacts, anonymous: Listing | undefined, withToken: Listing | undefined): LayerResult {
  const out = emptyLayer();
  if (facts.open) {
    const n = anonymous?.tools.length;
    out.findings.push({
      id: 'authorization.all-tools-anonymous',
      severity: 'high',
      title: 'Every tool is callable without credentials',
      control: control('A1'),
      evidence: `initialize and tools/list succeed without credentials${n !== undefined ? ` (${n} tools listed: ${anonymous!.tools.slice(0, 8).map((t) => String(t.name)).join(', ')}${n > 8 ? ', …' : ''})` : ''}`,
      fix: 'Put an authorization layer in front (mcp-bastion: auth.required, defaultTool: deny, a scope per tool).',
    });
    if (anonymous && withToken) {
      const a = JSON.stringify(anonymous.tools.map((t) => t.name).sort());
      const b = JSON.stringify(withToken.tools.map((t) => t.name).sort());
      if (a === b) out.findings.push({ id: 'authorization.list-not-caller-dependent', severity: 'low', title: 'tools/list is the same with and without credentials', control: control('A3'), evidence: `${anonymous.tools.length} tools either way`, fix: 'Filter tools/list by what the caller may call (mcp-bastion does with a policy).' });
    }
    return out;
  }
  out.passed.push('tools cannot be listed or called without credentials');
  const scopes = facts.prm?.scopes_supported;
  if (facts.prm) {
    if (!Array.isArray(scopes) || scopes.length === 0) {
      out.findings.push({ id: 'authorization.no-scopes', severity: 'medium', title: 'No scopes advertised', control: control('A2'), evidence: `${facts.prmUrl}: scopes_supported = ${JSON.stringify(scopes ?? null)}`, fix: 'Define scopes per tool or group of tools and list them in scopes_supported (mcp-bastion: servers.NAME.tools.TOOL.scopes).' });
    } else if (scopes.length === 1) {
      out.findings.push({ id: 'authorization.single-scope', severity: 'low', title: 'A single scope for every tool', control: control('A2'), evidence: `${facts.prmUrl}: scopes_supported = ${JSON.stringify(scopes)}`, fix: 'Separate read, write and admin tools into their own scopes so a client can be granted less.' });
    } else out.passed.push(`${scopes.length} scopes advertised: ${scopes.slice(0, 6).join(', ')}`);
  }
  if (withToken) out.passed.push(`with the given token: ${withToken.tools.length} tools listed`);
  return out;
}
