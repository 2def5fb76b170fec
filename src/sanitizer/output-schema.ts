/**
 * `structuredContent` of a tools/call result against the tool's `outputSchema` (MCP: a server
 * that declares an output schema MUST return structured results that conform to it).
 *
 * The schema comes from the upstream, so it is hostile input: its size is bounded before
 * compiling, it is compiled with `inlineRefs: false` (no code-size blow-up) and RE2 (re2js) runs
 * `pattern`/`patternProperties` in linear time, so `^(a+)+$` cannot backtrack catastrophically.
 * Draft-07 schemas (by `$schema`) use ajv's draft-07 class, anything else JSON Schema 2020-12 (the
 * MCP default). Compiled validators are cached by the schema's JSON (bounded). A schema that cannot
 * be compiled fails closed: the result is treated as not conforming.
 */
import { Ajv, type Options, type ValidateFunction, type ErrorObject } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { RE2JS } from 're2js';

function re2Engine(pattern: string, flags: string): { test(s: string): boolean; toString(): string } {
  const re = RE2JS.compile(pattern);
  const key = `re2:/${pattern}/${flags}`;
  return { test: (s: string) => re.matcher(s).find(), toString: () => key };
}
re2Engine.code = 're2';

const OPTIONS: Options = {
  strict: false,
  allErrors: false,
  inlineRefs: false,
  addUsedSchema: false,
  validateSchema: true,
  validateFormats: false,
  ownProperties: true,
  logger: false,
  code: { regExp: re2Engine, optimize: 1 },
};

const MAX_SCHEMA_CHARS = 256 * 1024;
const CACHE_MAX = 256;

let draft07: Ajv | undefined;
let draft2020: Ajv | undefined;
const cache = new Map<string, ValidateFunction | string>();

export type OutputSchemaCheck = { ok: true } | { ok: false; reason: 'invalid' | 'missing' | 'schema_unusable'; message: string };

function describe(e: ErrorObject | undefined): string {
  if (e === undefined) return 'does not conform to the outputSchema';
  const where = e.instancePath === '' ? 'structuredContent' : `structuredContent${e.instancePath.replace(/\//g, '.')}`;
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
  let json: string;
  try {
    json = JSON.stringify(schema);
  } catch {
    return 'the outputSchema is not serializable JSON';
  }
  if (json.length > MAX_SCHEMA_CHARS) return `the outputSchema is larger than ${MAX_SCHEMA_CHARS} characters`;
  const hit = cache.get(json);
  if (hit !== undefined) return hit;
  const dialect = typeof schema.$schema === 'string' ? schema.$schema : '';
  const useDraft07 = /draft-0[4-7]/.test(dialect);
  let result: ValidateFunction | string;
  try {
    const ajv = useDraft07 ? (draft07 ??= new Ajv(OPTIONS)) : (draft2020 ??= new Ajv2020(OPTIONS));
    const copy = JSON.parse(json) as Record<string, unknown>;
    delete copy.$id;
    if (!useDraft07) delete copy.$schema;
    result = ajv.compile(copy);
  } catch (err) {
    const m = err instanceof Error ? err.message : String(err);
    result = `the outputSchema cannot be compiled: ${m.replace(/[\u0000-\u001f]/g, ' ').slice(0, 200)}`; // eslint-disable-line no-control-regex
  }
  if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value as string);
  cache.set(json, result);
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
    // e.g. RangeError from a $ref loop the compiler let through: fail closed, as the argument path does.
    const m = err instanceof Error ? err.message : String(err);
    return { ok: false, reason: 'schema_unusable', message: `validation against the outputSchema failed: ${m.replace(/[\u0000-\u001f]/g, ' ').slice(0, 200)}` }; // eslint-disable-line no-control-regex
  }
  return { ok: false, reason: 'invalid', message: describe(validate.errors?.[0]) };
}
