/**
 * Compiling upstream JSON Schemas (a tool's inputSchema or outputSchema), shared by argument
 * validation (policy/arguments.ts) and the output-schema check (policy/output-schema.ts).
 * The upstream is untrusted, so a schema is:
 * - checked before compiling (schema-guard.ts: size, depth, $ref cycles and blow-ups, nothing
 *   remote);
 * - compiled on a private copy with `inlineRefs: false` and loops for long `required`/`enum`
 *   (no code-size explosion), and with RE2 (re2js) for `pattern`/`patternProperties`:
 *   linear-time matching, so a regex such as `^(a+)+$` cannot backtrack catastrophically;
 * - stripped of `uniqueItems`, replaced by a linear keyword (ajv compares every pair of items).
 * `format` is an annotation (2020-12 default) and not asserted. Draft-04..07 schemas (by
 * `$schema`) use ajv's draft-07 class, anything else JSON Schema 2020-12 (the MCP default).
 */
import { Ajv, type Options, type ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { RE2JS } from 're2js';
import { checkSchema, forEachSubschema, type SchemaProblem } from './schema-guard.js';

export type Dialect = '2020' | '07';

export interface SchemaLimits {
  maxSchemaBytes: number;
  maxSchemaDepth: number;
  maxSchemaCost: number;
}

/**
 * ajv's regular-expression hook, backed by RE2 (linear time). JS `test` semantics: unanchored
 * search. `toString` must be unique per pattern: ajv caches compiled patterns by it.
 */
function re2Engine(pattern: string, flags: string): { test(s: string): boolean; toString(): string } {
  const re = RE2JS.compile(pattern);
  const key = `re2:/${pattern}/${flags}`;
  return { test: (s: string) => re.matcher(s).find(), toString: () => key };
}
re2Engine.code = 're2';

const AJV_OPTIONS: Options = {
  strict: false,
  allErrors: false,
  verbose: false,
  inlineRefs: false,
  addUsedSchema: false,
  validateSchema: true,
  validateFormats: false,
  ownProperties: true,
  logger: false,
  loopRequired: 16,
  loopEnum: 16,
  unicodeRegExp: true,
  code: { regExp: re2Engine, optimize: 1 },
};

/** The keyword `uniqueItems: true` is rewritten to (its errors are reported as `uniqueItems`). */
export const UNIQUE_KEYWORD = 'x-bastion-unique-items';

/** JSON with object keys sorted: equal JSON values (JSON Schema equality) give equal strings. */
function canonical(v: unknown): string {
  if (typeof v !== 'object' || v === null) return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  const keys = Object.keys(v).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
}

function uniqueItems(_schema: unknown, data: unknown): boolean {
  if (!Array.isArray(data)) return true;
  const seen = new Set<string>();
  for (const item of data) {
    const k = canonical(item);
    if (seen.has(k)) return false;
    seen.add(k);
  }
  return true;
}

/** A new ajv for the dialect, with the gateway's hardened options and keywords. */
export function newSchemaEngine(dialect: Dialect): Ajv {
  const ajv = dialect === '07' ? new Ajv(AJV_OPTIONS) : (new Ajv2020(AJV_OPTIONS) as Ajv);
  ajv.addKeyword({ keyword: UNIQUE_KEYWORD, schemaType: 'boolean', errors: false, validate: uniqueItems });
  return ajv;
}

/** Control characters out, length bounded: for messages built from upstream text. */
export function clip(s: string, n = 200): string {
  // eslint-disable-next-line no-control-regex
  const clean = s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, ' ');
  return clean.length > n ? `${clean.slice(0, n)}…` : clean;
}

export type Prepared = { copy: Record<string, unknown> | boolean; dialect: Dialect };

/**
 * Guard an upstream schema and make the private copy ajv will compile: dialect chosen (and
 * `$schema` dropped: ajv is not asked to fetch or look up a meta-schema), `uniqueItems`
 * rewritten. `json` is the schema's JSON (the caller has it, for its cache key).
 */
export function prepareSchema(schema: unknown, json: string, limits: Readonly<SchemaLimits>): Prepared | SchemaProblem {
  const problem = checkSchema(schema, Buffer.byteLength(json), limits);
  if (problem) return problem;
  // A private copy: ajv annotates nothing, but the upstream's objects are not ours to share.
  const copy = JSON.parse(json) as Record<string, unknown> | boolean;
  let dialect: Dialect = '2020';
  if (typeof copy === 'object') {
    const declared = typeof copy.$schema === 'string' ? copy.$schema : '';
    if (/draft-0[4-7]/.test(declared)) dialect = '07';
    delete copy.$schema;
  }
  // ajv checks uniqueItems by comparing every pair of items (quadratic): replaced by a
  // keyword that hashes a canonical form of each item (linear).
  forEachSubschema(copy, (n) => {
    if (n.uniqueItems === true) n[UNIQUE_KEYWORD] = true;
    delete n.uniqueItems;
  });
  return { copy, dialect };
}

/** Compile a prepared copy; ajv keeps no reference to it afterwards. */
export function compilePrepared(ajv: Ajv, copy: Prepared['copy']): ValidateFunction | SchemaProblem {
  try {
    return ajv.compile(copy);
  } catch (err) {
    return { rule: 'schema_invalid', message: `cannot be compiled: ${clip((err as Error).message)}` };
  } finally {
    // Drop ajv's own reference so replaced schemas can be collected; the closure stays valid.
    try {
      ajv.removeSchema(copy);
    } catch {
      /* not cached */
    }
  }
}
