/**
 * RFC 8785 JSON Canonicalization Scheme (JCS) and the canonical identity of a definition.
 *
 * JCS: object members sorted by the UTF-16 code units of their names, no whitespace, numbers
 * serialized as ECMAScript's Number.prototype.toString (what JSON.stringify does for finite
 * numbers; -0 becomes 0), strings escaped as JSON.stringify escapes them. Input that is not
 * I-JSON (lone surrogates) is still serialized deterministically (JSON.stringify's \udxxx form),
 * so a hostile upstream cannot make hashing throw; non-finite numbers and values JSON has no
 * form for are refused.
 */
import { createHash } from 'node:crypto';
import type { DefinitionKind, RawDefinition } from './types.js';

/** Deeper nesting than this is refused (hostile input must not exhaust the stack). */
export const MAX_DEPTH = 200;

export class CanonicalizationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CanonicalizationError';
  }
}

function serialize(v: unknown, depth: number, out: string[]): void {
  if (depth > MAX_DEPTH) throw new CanonicalizationError(`JSON nested deeper than ${MAX_DEPTH} levels`);
  if (v === null) {
    out.push('null');
    return;
  }
  switch (typeof v) {
    case 'boolean':
      out.push(v ? 'true' : 'false');
      return;
    case 'number':
      if (!Number.isFinite(v)) throw new CanonicalizationError('non-finite number has no JSON form');
      out.push(Object.is(v, -0) ? '0' : String(v));
      return;
    case 'string':
      out.push(JSON.stringify(v));
      return;
    case 'object': {
      if (Array.isArray(v)) {
        out.push('[');
        for (let i = 0; i < v.length; i++) {
          if (i > 0) out.push(',');
          const x: unknown = v[i];
          // Like JSON.stringify: holes and undefined inside arrays become null.
          serialize(x === undefined || typeof x === 'function' || typeof x === 'symbol' ? null : x, depth + 1, out);
        }
        out.push(']');
        return;
      }
      const o = v as Record<string, unknown>;
      // Default sort compares UTF-16 code units, exactly what RFC 8785 section 3.2.3 asks.
      const keys = Object.keys(o).filter((k) => o[k] !== undefined && typeof o[k] !== 'function' && typeof o[k] !== 'symbol').sort();
      out.push('{');
      for (let i = 0; i < keys.length; i++) {
        if (i > 0) out.push(',');
        out.push(JSON.stringify(keys[i]), ':');
        serialize(o[keys[i]!], depth + 1, out);
      }
      out.push('}');
      return;
    }
    default:
      throw new CanonicalizationError(`a ${typeof v} has no JSON form`);
  }
}

/** RFC 8785 canonical JSON text of a value. Throws CanonicalizationError on non-JSON input. */
export function canonicalize(v: unknown): string {
  const out: string[] = [];
  serialize(v, 0, out);
  return out.join('');
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** Identity fields per kind: what the model sees and what a pin covers. */
export const IDENTITY_FIELDS: Readonly<Record<DefinitionKind, readonly string[]>> = {
  tool: ['name', 'title', 'description', 'inputSchema', 'outputSchema', 'annotations'],
  prompt: ['name', 'title', 'description', 'arguments'],
  resourceTemplate: ['name', 'title', 'description', 'uriTemplate', 'mimeType', 'annotations'],
};

/** The identity fields of a definition (absent fields stay absent). */
export function identityOf(kind: DefinitionKind, def: RawDefinition): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of IDENTITY_FIELDS[kind]) if (def[f] !== undefined) out[f] = def[f];
  return out;
}

/**
 * `sha256:<hex>` of the canonical identity of a definition. The kind is part of the hashed text,
 * so a prompt and a tool with the same fields never share a hash.
 */
export function definitionHash(kind: DefinitionKind, def: RawDefinition): string {
  return `sha256:${sha256Hex(canonicalize({ kind, definition: identityOf(kind, def) }))}`;
}

/** Pretty JSON with sorted keys (2-space indent): the form diffs are made of. */
export function prettyCanonical(v: unknown): string {
  return JSON.stringify(JSON.parse(canonicalize(v)) as unknown, sortedReplacer, 2);
}

function sortedReplacer(_k: string, v: unknown): unknown {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    const s: Record<string, unknown> = {};
    for (const k of Object.keys(o).sort()) s[k] = o[k];
    return s;
  }
  return v;
}
