/**
 * Validation of tools/call arguments against the tool's inputSchema (from the upstream's
 * tools/list, JSON Schema 2020-12 or draft-07) plus the operator's constraints.
 *
 * - Each schema is compiled once (ajv) and cached: by object identity first (the session's
 *   catalog keeps the same objects until the tool list changes), then by a SHA-256 of its JSON.
 * - Unknown top-level arguments are refused by default, whatever the schema says.
 * - Hostile schemas: guarded and compiled by json-schema-engine.ts (size, depth, $ref cycles and
 *   blow-ups, nothing remote; no code-size explosion; RE2 for `pattern`/`patternProperties`;
 *   linear uniqueItems). A schema that fails any of this makes calls to that tool fail closed.
 * - Arguments: size and nesting depth bounded before any validation runs.
 */
import { createHash } from 'node:crypto';
import type { Ajv, ValidateFunction, ErrorObject } from 'ajv';
import { RE2JS } from 're2js';
import { clip, compilePrepared, newSchemaEngine, prepareSchema, UNIQUE_KEYWORD, type Dialect } from './json-schema-engine.js';
import { declaredProperties, jsonDepth } from './schema-guard.js';
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
  private ajv2020: Ajv | undefined;
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

  private engine(dialect: Dialect): Ajv {
    if (dialect === '07') return (this.ajv07 ??= newSchemaEngine('07'));
    return (this.ajv2020 ??= newSchemaEngine('2020'));
  }

  private compile(schema: unknown, json: string, limits: Readonly<ArgumentLimits>): Compiled {
    this.compiledCount++;
    const prepared = prepareSchema(schema, json, limits);
    if ('rule' in prepared) return { validate: undefined, problem: prepared, names: new Set(), patterns: [] };
    const { names, patterns } = declaredProperties(prepared.copy);
    let compiledPatterns: RE2JS[];
    try {
      compiledPatterns = patterns.map((p) => RE2JS.compile(p));
    } catch (err) {
      return { validate: undefined, problem: { rule: 'schema_invalid', message: `has a patternProperties regex RE2 cannot run: ${clip((err as Error).message)}` }, names, patterns: [] };
    }
    const validate = compilePrepared(this.engine(prepared.dialect), prepared.copy);
    if (typeof validate !== 'function') return { validate: undefined, problem: validate, names, patterns: [] };
    return { validate, names, patterns: compiledPatterns };
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
