/**
 * Reading definition documents given to the CLI (`--from FILE`, `bastion scan tools FILE`):
 * - a JSON array of tools,
 * - a `tools/list` (or `prompts/list`, `resources/templates/list`) result: `{tools: [...]}`,
 * - a JSON-RPC response carrying such a result,
 * - an object with any of `tools`, `prompts`, `resourceTemplates`,
 * - a pending definition exported from the state store (`{server, kind, name, definition}`) or
 *   an array of them.
 */
import type { DefinitionKind, RawDefinition } from './types.js';
import { DEFINITION_KINDS } from './types.js';

export interface DefinitionSet {
  tool: RawDefinition[];
  prompt: RawDefinition[];
  resourceTemplate: RawDefinition[];
}

const FIELD: Record<DefinitionKind, string> = { tool: 'tools', prompt: 'prompts', resourceTemplate: 'resourceTemplates' };

function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function isPending(v: unknown): v is { kind: DefinitionKind; definition: RawDefinition } {
  return isObj(v) && DEFINITION_KINDS.includes(v.kind as DefinitionKind) && isObj(v.definition) && typeof v.hash === 'string';
}

/** Returns the definitions, or a message saying what the document should look like. */
export function parseDefinitions(doc: unknown): DefinitionSet | string {
  const out: DefinitionSet = { tool: [], prompt: [], resourceTemplate: [] };
  let v = doc;
  if (isObj(v) && v.jsonrpc === '2.0' && isObj(v.result)) v = v.result;
  if (Array.isArray(v)) {
    for (const x of v) {
      if (isPending(x)) out[x.kind].push(x.definition);
      else out.tool.push(x as RawDefinition);
    }
    return out;
  }
  if (isPending(v)) {
    out[v.kind].push(v.definition);
    return out;
  }
  if (isObj(v)) {
    let found = false;
    for (const k of DEFINITION_KINDS) {
      const list = v[FIELD[k]];
      if (list === undefined) continue;
      if (!Array.isArray(list)) return `"${FIELD[k]}" must be an array`;
      out[k].push(...(list as RawDefinition[]));
      found = true;
    }
    if (found) return out;
  }
  return 'expected a JSON array of tools, or an object with "tools" (a tools/list result), "prompts" or "resourceTemplates"';
}
