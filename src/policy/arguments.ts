/**
 * Validation of tools/call arguments against the tool's inputSchema (from the upstream's
 * tools/list, JSON Schema 2020-12 or draft-07) plus the operator's constraints.
 *
 * - Each schema is compiled once (ajv) and cached: by object identity first (the session's
 *   catalog keeps the same objects until the tool list changes), then by a SHA-256 of its JSON.
 * - Unknown top-level arguments are refused by default, whatever the schema says.
 * - Hostile schemas: checked before compiling (schema-guard.ts: size, depth, $ref cycles and
 *   blow-ups, nothing remote), compiled with `inlineRefs: false` (no code-size explosion) and
 *   with RE2 (re2js) for `pattern`/`patternProperties`: linear-time matching, so a regex such as
 *   `^(a+)+$` cannot backtrack catastrophically. `format` is an annotation (2020-12 default) and
 *   not asserted. A schema that fails any of this makes calls to that tool fail closed.
 * - Arguments: size and nesting depth bounded before any validation runs.
 */
import { createHash } from 'node:crypto';
import { Ajv, type Options, type ValidateFunction, type ErrorObject } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { RE2JS } from 're2js';
import { checkSchema, declaredProperties, forEachSubschema, jsonDepth } from './schema-guard.js';
import type { ArgumentConstraint, ArgumentLimits } from './types.js';

export type ArgumentCheck =
  | { ok: true }
  | {
      ok: false;
      /** invalid: the arguments break the schema or a constraint; schema_unusable: the upstream schema was refused. */
      kind: 'invalid' | 'too_large' | 'too_deep' | 'schema_unusable';
      /** Argument path (`path`, `items[2].name`), or `(arguments)` for the whole object. */
      argument: string;
      /** The rule broken: a JSON Schema keyword (`pattern`, `maximum`, `additionalProperties`, ...) or a limit. */
      rule: string;
      /** Human-readable, public: says what was wrong. */
      message: string;
    };

interface Compiled {
  validate: ValidateFunction | undefined;
  /** Why the schema was refused (then validate is undefined). */
  problem?: { rule: string; message: string } | undefined;
  names: Set<string>;
  patterns: RE2JS[];
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

const UNIQUE_KEYWORD = 'x-bastion-unique-items';

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

function addKeywords(ajv: Ajv): Ajv {
  ajv.addKeyword({
    keyword: UNIQUE_KEYWORD,
    schemaType: 'boolean',
    errors: false,
    validate: uniqueItems,
  });
  return ajv;
}

function clip(s: string, n = 200): string {
  // eslint-disable-next-line no-control-regex
  const clean = s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, ' ');
  return clean.length > n ? `${clean.slice(0, n)}…` : clean;
}

function pointerToPath(ptr: string): string {
  if (ptr === '') return '';
  let out = '';
  for (const raw of ptr.slice(1).split('/')) {
    const k = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^\d+$/.test(k)) out += `[${k}]`;
    else out += out === '' ? k : `.${k}`;
  }
  return out;
}

function describeError(e: ErrorObject): { argument: string; rule: string; message: string } {
  let path = pointerToPath(e.instancePath);
  const params = e.params as Record<string, unknown>;
  if (e.keyword === 'required' && typeof params.missingProperty === 'string') {
    path = path === '' ? params.missingProperty : `${path}.${params.missingProperty}`;
    return { argument: clip(path), rule: 'required', message: `argument \`${clip(path)}\` is required` };
  }
  if ((e.keyword === 'additionalProperties' || e.keyword === 'unevaluatedProperties') && typeof params.additionalProperty === 'string') {
    path = path === '' ? params.additionalProperty : `${path}.${params.additionalProperty}`;
    return { argument: clip(path), rule: e.keyword, message: `argument \`${clip(path)}\` is not allowed by the tool's input schema` };
  }
  const arg = path === '' ? '(arguments)' : clip(path);
  if (e.keyword === UNIQUE_KEYWORD) return { argument: arg, rule: 'uniqueItems', message: `argument \`${arg}\` must not have duplicate items (rule: uniqueItems)` };
  return { argument: arg, rule: e.keyword, message: `argument \`${arg}\` ${clip(e.message ?? 'is invalid')} (rule: ${e.keyword})` };
}

export interface ValidateInput {
  /** Tool name (for messages). */
  tool: string;
  /** The tool's inputSchema as the upstream listed it (undefined: an object with no declared properties). */
  schema: unknown;
  /** `params.arguments` of the call (undefined: `{}`). */
  args: unknown;
  limits: Readonly<ArgumentLimits>;
  /** Operator constraints (`servers.NAME.tools.TOOL.args`). */
  constraints?: Readonly<Record<string, ArgumentConstraint>> | undefined;
  unknownArguments: 'refuse' | 'allow';
}

export interface ArgumentValidatorOptions {
  /** Compiled schemas kept by hash (least recently used dropped). Default 1000. */
  maxCachedSchemas?: number;
}

export class ArgumentValidator {
  private ajv2020: Ajv2020 | undefined;
  private ajv07: Ajv | undefined;
  private readonly byObject = new WeakMap<object, Map<string, Compiled>>();
  private readonly byHash = new Map<string, Compiled>();
  private readonly constraintCache = new Map<string, ValidateFunction>();
  private readonly constraintByObject = new WeakMap<object, ValidateFunction>();
  private readonly maxCached: number;
  /** Schemas compiled so far (cache misses), for tests and metrics. */
  compiledCount = 0;

  constructor(options: ArgumentValidatorOptions = {}) {
    this.maxCached = options.maxCachedSchemas ?? 1000;
  }

  private engine(dialect: '2020' | '07'): Ajv {
    if (dialect === '07') return (this.ajv07 ??= addKeywords(new Ajv(AJV_OPTIONS)));
    return (this.ajv2020 ??= addKeywords(new Ajv2020(AJV_OPTIONS)) as Ajv2020);
  }

  private compile(schema: unknown, json: string, limits: Readonly<ArgumentLimits>): Compiled {
    this.compiledCount++;
    const problem = checkSchema(schema, Buffer.byteLength(json), limits);
    if (problem) return { validate: undefined, problem, names: new Set(), patterns: [] };
    // A private copy: ajv annotates nothing, but the upstream's objects are not ours to share.
    const copy = JSON.parse(json) as Record<string, unknown> | boolean;
    let dialect: '2020' | '07' = '2020';
    if (typeof copy === 'object') {
      const declared = typeof copy.$schema === 'string' ? copy.$schema : '';
      if (/draft-0[4-7]/.test(declared)) dialect = '07';
      // The meta-schema is chosen here; ajv is not asked to fetch or look one up.
      delete copy.$schema;
    }
    // ajv checks uniqueItems by comparing every pair of items (quadratic): replaced by a
    // keyword that hashes a canonical form of each item (linear).
    forEachSubschema(copy, (n) => {
      if (n.uniqueItems === true) {
        delete n.uniqueItems;
        n[UNIQUE_KEYWORD] = true;
      } else if ('uniqueItems' in n) {
        delete n.uniqueItems;
      }
    });
    const { names, patterns } = declaredProperties(copy);
    let compiledPatterns: RE2JS[];
    try {
      compiledPatterns = patterns.map((p) => RE2JS.compile(p));
    } catch (err) {
      return { validate: undefined, problem: { rule: 'schema_invalid', message: `has a patternProperties regex RE2 cannot run: ${clip((err as Error).message)}` }, names, patterns: [] };
    }
    const ajv = this.engine(dialect);
    try {
      const validate = ajv.compile(copy);
      return { validate, names, patterns: compiledPatterns };
    } catch (err) {
      return { validate: undefined, problem: { rule: 'schema_invalid', message: `cannot be compiled: ${clip((err as Error).message)}` }, names, patterns: [] };
    } finally {
      // Drop ajv's own reference so replaced schemas can be collected; the closure stays valid.
      try {
        ajv.removeSchema(copy);
      } catch {
        /* not cached */
      }
    }
  }

  private compiledFor(schema: unknown, limits: Readonly<ArgumentLimits>): Compiled {
    const limitsKey = `${limits.maxSchemaBytes}/${limits.maxSchemaDepth}/${limits.maxSchemaCost}`;
    const isObject = typeof schema === 'object' && schema !== null;
    if (isObject) {
      const hit = this.byObject.get(schema)?.get(limitsKey);
      if (hit) return hit;
    }
    // Depth first: serializing a very deep value would overflow the stack.
    let json: string;
    if (jsonDepth(schema, limits.maxSchemaDepth) > limits.maxSchemaDepth) {
      json = 'null';
    } else {
      json = JSON.stringify(schema) ?? 'null';
    }
    const hash = `${createHash('sha256').update(json).digest('base64url')}:${limitsKey}`;
    let c = this.byHash.get(hash);
    if (c === undefined) {
      c = json === 'null' && schema !== null
        ? { validate: undefined, problem: { rule: 'schema_too_deep', message: `nests deeper than limits.maxSchemaDepth (${limits.maxSchemaDepth})` }, names: new Set(), patterns: [] }
        : this.compile(schema, json, limits);
      this.byHash.set(hash, c);
      if (this.byHash.size > this.maxCached) this.byHash.delete(this.byHash.keys().next().value!);
    } else {
      // Refresh recency.
      this.byHash.delete(hash);
      this.byHash.set(hash, c);
    }
    if (isObject) {
      let m = this.byObject.get(schema);
      if (m === undefined) this.byObject.set(schema, (m = new Map()));
      m.set(limitsKey, c);
    }
    return c;
  }

  private constraintValidator(constraints: Readonly<Record<string, ArgumentConstraint>>): ValidateFunction {
    const byObject = this.constraintByObject.get(constraints);
    if (byObject !== undefined) return byObject;
    const v = this.constraintByKey(constraints);
    this.constraintByObject.set(constraints, v);
    return v;
  }

  private constraintByKey(constraints: Readonly<Record<string, ArgumentConstraint>>): ValidateFunction {
    const key = JSON.stringify(constraints);
    let v = this.constraintCache.get(key);
    if (v === undefined) {
      const properties: Record<string, unknown> = {};
      const required: string[] = [];
      for (const [name, c] of Object.entries(constraints)) {
        const { required: req, ...rest } = c;
        if (req) required.push(name);
        properties[name] = rest;
      }
      v = this.engine('2020').compile({ type: 'object', properties, required });
      this.constraintCache.set(key, v);
    }
    return v;
  }

  validate(input: ValidateInput): ArgumentCheck {
    const { limits } = input;
    const args = input.args === undefined ? {} : input.args;
    if (typeof args !== 'object' || args === null || Array.isArray(args)) {
      return { ok: false, kind: 'invalid', argument: '(arguments)', rule: 'type', message: 'arguments must be an object' };
    }
    const depth = jsonDepth(args, limits.maxArgumentDepth);
    if (depth > limits.maxArgumentDepth) {
      return {
        ok: false,
        kind: 'too_deep',
        argument: '(arguments)',
        rule: 'maxArgumentDepth',
        message: `arguments nest deeper than ${limits.maxArgumentDepth} levels (limits.maxArgumentDepth)`,
      };
    }
    const bytes = Buffer.byteLength(JSON.stringify(args));
    if (bytes > limits.maxArgumentBytes) {
      return {
        ok: false,
        kind: 'too_large',
        argument: '(arguments)',
        rule: 'maxArgumentBytes',
        message: `arguments are ${bytes} bytes, more than ${limits.maxArgumentBytes} (limits.maxArgumentBytes)`,
      };
    }
    const schema = input.schema === undefined ? { type: 'object' } : input.schema;
    const c = this.compiledFor(schema, limits);
    if (c.validate === undefined) {
      const p = c.problem ?? { rule: 'schema_invalid', message: 'cannot be used' };
      return {
        ok: false,
        kind: 'schema_unusable',
        argument: '(arguments)',
        rule: p.rule,
        message: `the input schema of tool ${clip(input.tool, 100)} from the upstream ${p.message}; the gateway refuses calls to it until the upstream fixes it`,
      };
    }
    if (input.unknownArguments === 'refuse') {
      const declared = input.constraints;
      for (const k of Object.keys(args)) {
        if (c.names.has(k) || (declared !== undefined && Object.hasOwn(declared, k))) continue;
        if (c.patterns.some((re) => re.matcher(k).find())) continue;
        return {
          ok: false,
          kind: 'invalid',
          argument: clip(k),
          rule: 'unknownArguments',
          message: `argument \`${clip(k)}\` is not declared by the tool's input schema (unknown arguments are refused)`,
        };
      }
    }
    let ok: boolean;
    try {
      ok = c.validate(args) as boolean;
    } catch (err) {
      // e.g. RangeError from a recursion the guard did not foresee: fail closed.
      return { ok: false, kind: 'schema_unusable', argument: '(arguments)', rule: 'schema_invalid', message: `validation of tool ${clip(input.tool, 100)} failed: ${clip((err as Error).message)}` };
    }
    if (!ok) {
      const e = c.validate.errors?.[0];
      const d = e ? describeError(e) : { argument: '(arguments)', rule: 'schema', message: 'arguments do not match the input schema' };
      return { ok: false, kind: 'invalid', ...d };
    }
    if (input.constraints !== undefined && Object.keys(input.constraints).length > 0) {
      const v = this.constraintValidator(input.constraints);
      if (!(v(args) as boolean)) {
        const e = v.errors?.[0];
        const d = e ? describeError(e) : { argument: '(arguments)', rule: 'args', message: 'arguments break an operator constraint' };
        return { ok: false, kind: 'invalid', ...d, message: `${d.message} (operator constraint servers.*.tools.${clip(input.tool, 100)}.args)` };
      }
    }
    return { ok: true };
  }
}
