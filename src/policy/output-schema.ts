/**
 * `structuredContent` of a tools/call result against the tool's `outputSchema` (MCP: a server
 * that declares an output schema MUST return structured results that conform to it).
 *
 * The schema comes from the upstream, so it is hostile input: it is guarded and compiled exactly
 * like an inputSchema (policy/json-schema-engine.ts: size, depth, $ref cycles and blow-ups,
 * nothing remote, no code-size explosion, RE2 for patterns, linear uniqueItems; draft-04..07 by
 * `$schema` or 2020-12, the MCP default). Compiled validators are cached per schema object and by
 * a SHA-256 of the schema's JSON (bounded). A schema that is refused or cannot be compiled fails
 * closed: the result is treated as not conforming.
 */
import { createHash } from 'node:crypto';
import type { Ajv, ValidateFunction, ErrorObject } from 'ajv';
import { clip, compilePrepared, newSchemaEngine, prepareSchema, UNIQUE_KEYWORD, type SchemaLimits } from './json-schema-engine.js';
import { jsonDepth } from './schema-guard.js';

/**
 * The argument path's default limits (policy/compile.ts); an operator's `limits` apply to
 * inputSchemas only (the guard's messages name them).
 */
const LIMITS: Readonly<SchemaLimits> = { maxSchemaBytes: 256 * 1024, maxSchemaDepth: 48, maxSchemaCost: 2_000 };
const CACHE_MAX = 256;

let draft07: Ajv | undefined;
let draft2020: Ajv | undefined;
const cache = new Map<string, ValidateFunction | string>();

export type OutputSchemaCheck = { ok: true } | { ok: false; reason: 'invalid' | 'missing' | 'schema_unusable'; message: string };

function describe(e: ErrorObject | undefined): string {
  if (e === undefined) return 'does not conform to the outputSchema';
  const where = e.instancePath === '' ? 'structuredContent' : `structuredContent${e.instancePath.replace(/\//g, '.')}`;
  if (e.keyword === UNIQUE_KEYWORD) return `${where} must not have duplicate items (uniqueItems)`;
  const msg = (e.message ?? 'is invalid').replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ').slice(0, 200); // eslint-disable-line no-control-regex
  return `${where} ${msg} (${e.keyword})`;
}

/**
 * The session's catalog hands out the same (never mutated) schema object for every call of a
 * tool until the upstream's list changes: remember the result per object, so a call does not
 * serialize the schema again just to find its validator.
 */
const byObject = new WeakMap<object, ValidateFunction | string>();

function compile(schema: Record<string, unknown>): ValidateFunction | string {
  const known = byObject.get(schema);
  if (known !== undefined) return known;
  const result = compileByJson(schema);
  byObject.set(schema, result);
  return result;
}

function compileByJson(schema: Record<string, unknown>): ValidateFunction | string {
  // Depth first: serializing a very deep value would overflow the stack.
  if (jsonDepth(schema, LIMITS.maxSchemaDepth) > LIMITS.maxSchemaDepth) {
    return `the outputSchema nests deeper than ${LIMITS.maxSchemaDepth} levels`;
  }
  let json: string;
  try {
    json = JSON.stringify(schema);
  } catch {
    return 'the outputSchema is not serializable JSON';
  }
  const key = createHash('sha256').update(json).digest('base64url');
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  let result: ValidateFunction | string;
  const prepared = prepareSchema(schema, json, LIMITS);
  if ('rule' in prepared) {
    result = `the outputSchema ${prepared.message} (${prepared.rule})`;
  } else {
    const ajv = prepared.dialect === '07' ? (draft07 ??= newSchemaEngine('07')) : (draft2020 ??= newSchemaEngine('2020'));
    const v = compilePrepared(ajv, prepared.copy);
    result = typeof v === 'function' ? v : `the outputSchema ${v.message}`;
  }
  if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value as string);
  cache.set(key, result);
  return result;
}

/**
 * Check a tools/call result against the tool's outputSchema. A result with `isError: true` is
 * not checked (errors carry no structured result).
 */
export function checkOutputSchema(outputSchema: Record<string, unknown> | undefined, result: Record<string, unknown>): OutputSchemaCheck {
  if (outputSchema === undefined || result.isError === true) return { ok: true };
  const validate = compile(outputSchema);
  if (typeof validate === 'string') return { ok: false, reason: 'schema_unusable', message: validate };
  if (!('structuredContent' in result) || result.structuredContent === undefined) {
    return { ok: false, reason: 'missing', message: 'the tool declares an outputSchema but the result has no structuredContent' };
  }
  try {
    if (validate(result.structuredContent)) return { ok: true };
  } catch (err) {
    // e.g. RangeError from a recursion the guard did not foresee: fail closed.
    const m = err instanceof Error ? err.message : String(err);
    return { ok: false, reason: 'schema_unusable', message: `validation against the outputSchema failed: ${clip(m)}` };
  }
  return { ok: false, reason: 'invalid', message: describe(validate.errors?.[0]) };
}
