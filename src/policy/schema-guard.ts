/**
 * Checks an upstream JSON Schema before the gateway compiles it. The upstream is untrusted: its
 * schema may be built to exhaust the gateway. Refused here, cheaply and without recursion:
 * - too large (bytes) or too deep (nesting);
 * - `$ref` other than a local JSON pointer (`#/...`), `$dynamicRef`, `$recursiveRef`, nested
 *   `$id` (the gateway resolves nothing remote and keeps one base URI);
 * - a cycle of subschemas applying to the same value (`{"allOf":[{"$ref":"#"}]}`): infinite;
 * - more than `maxCost` subschemas applying to one value after following `$ref` (the "billion
 *   laughs" of `allOf` chains: each level doubling the work).
 * Work is linear in the schema size: each subschema's cost is computed once (memoized).
 */

type Json = unknown;

/** Keywords whose subschemas apply to the same value. */
const SAME_ONE = ['not', 'if', 'then', 'else'] as const;
const SAME_MANY = ['allOf', 'anyOf', 'oneOf'] as const;
const SAME_MAP = ['dependentSchemas'] as const;
/** Keywords whose subschemas apply to child values (properties, items). */
const CHILD_ONE = ['additionalProperties', 'unevaluatedProperties', 'propertyNames', 'additionalItems', 'unevaluatedItems', 'contains'] as const;
const CHILD_MAP = ['properties', 'patternProperties'] as const;
const CHILD_MANY = ['prefixItems'] as const;
/** Containers of subschemas applied only through $ref. */
const DEFS = ['$defs', 'definitions'] as const;

function isObj(v: Json): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Depth of a JSON value, iteratively; stops counting past `max`. */
export function jsonDepth(v: Json, max: number): number {
  let deepest = 0;
  const stack: [Json, number][] = [[v, 1]];
  while (stack.length > 0) {
    const [x, d] = stack.pop()!;
    if (typeof x !== 'object' || x === null) continue;
    if (d > deepest) deepest = d;
    if (deepest > max) return deepest;
    const values = Array.isArray(x) ? x : Object.values(x);
    for (const c of values) if (typeof c === 'object' && c !== null) stack.push([c, d + 1]);
  }
  return deepest;
}

function resolvePointer(root: Json, ref: string): Json | undefined {
  if (ref === '#') return root;
  if (!ref.startsWith('#/')) return undefined;
  let cur: Json = root;
  for (const raw of ref.slice(2).split('/')) {
    let key: string;
    try {
      key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    } catch {
      return undefined;
    }
    if (Array.isArray(cur)) {
      if (!/^\d+$/.test(key)) return undefined;
      cur = cur[Number(key)];
    } else if (isObj(cur) && Object.hasOwn(cur, key)) {
      cur = cur[key];
    } else {
      return undefined;
    }
    if (cur === undefined) return undefined;
  }
  return cur;
}

export type SchemaProblem = { rule: string; message: string };

interface Edges {
  same: Json[];
  child: Json[];
}

function edgesOf(node: Record<string, Json>, root: Json, isRoot: boolean): Edges | SchemaProblem {
  const same: Json[] = [];
  const child: Json[] = [];
  if ('$dynamicRef' in node || '$recursiveRef' in node) {
    return { rule: 'schema_unsupported', message: 'uses $dynamicRef/$recursiveRef, which the gateway does not resolve' };
  }
  if (!isRoot && ('$id' in node || (typeof node.id === 'string' && node.id.startsWith('http')))) {
    return { rule: 'schema_unsupported', message: 'declares a nested $id, which the gateway does not resolve' };
  }
  if ('$ref' in node) {
    const ref = node.$ref;
    if (typeof ref !== 'string' || !ref.startsWith('#')) {
      return { rule: 'schema_unsupported', message: 'uses a $ref that is not local (#/...); the gateway fetches nothing' };
    }
    const target = resolvePointer(root, ref);
    if (target === undefined) return { rule: 'schema_unsupported', message: `has a $ref that points nowhere (${ref.slice(0, 100)})` };
    same.push(target);
  }
  for (const k of SAME_ONE) if (k in node) same.push(node[k]);
  for (const k of SAME_MANY) if (Array.isArray(node[k])) same.push(...(node[k] as Json[]));
  for (const k of SAME_MAP) if (isObj(node[k])) same.push(...Object.values(node[k] as Record<string, Json>));
  if (isObj(node.dependencies)) for (const d of Object.values(node.dependencies)) if (isObj(d) || typeof d === 'boolean') same.push(d);
  for (const k of CHILD_ONE) if (k in node) child.push(node[k]);
  for (const k of CHILD_MAP) if (isObj(node[k])) child.push(...Object.values(node[k] as Record<string, Json>));
  for (const k of CHILD_MANY) if (Array.isArray(node[k])) child.push(...(node[k] as Json[]));
  if ('items' in node) {
    if (Array.isArray(node.items)) child.push(...(node.items as Json[]));
    else child.push(node.items);
  }
  for (const k of DEFS) if (isObj(node[k])) child.push(...Object.values(node[k] as Record<string, Json>));
  return { same, child };
}

/**
 * Check a schema. Returns undefined when it may be compiled, or the problem.
 * `bytes` is the schema's serialized size (the caller has it already).
 */
export function checkSchema(
  schema: Json,
  bytes: number,
  limits: { maxSchemaBytes: number; maxSchemaDepth: number; maxSchemaCost: number },
): SchemaProblem | undefined {
  if (bytes > limits.maxSchemaBytes) {
    return { rule: 'schema_too_large', message: `is ${bytes} bytes, more than limits.maxSchemaBytes (${limits.maxSchemaBytes})` };
  }
  const depth = jsonDepth(schema, limits.maxSchemaDepth);
  if (depth > limits.maxSchemaDepth) {
    return { rule: 'schema_too_deep', message: `nests deeper than limits.maxSchemaDepth (${limits.maxSchemaDepth})` };
  }
  if (typeof schema === 'boolean') return undefined;
  if (!isObj(schema)) return { rule: 'schema_invalid', message: 'is not a JSON Schema object' };

  // Iterative post-order DFS over subschemas. cost(n) = 1 + sum(cost of same-value subschemas).
  // A same-value edge back to a node on the stack is an infinite loop.
  const cost = new Map<object, number>();
  const onStack = new Set<object>();
  const edges = new Map<object, Edges>();
  type Frame = { node: Record<string, Json>; i: number; sum: number };
  const roots: Json[] = [schema];
  while (roots.length > 0) {
    const start = roots.pop();
    if (!isObj(start) || cost.has(start)) continue;
    const stack: Frame[] = [];
    const push = (n: Record<string, Json>): SchemaProblem | undefined => {
      const e = edgesOf(n, schema, n === schema);
      if ('rule' in e) return e;
      edges.set(n, e);
      for (const c of e.child) roots.push(c);
      onStack.add(n);
      // enum/const are compared value by value: they weigh on the cost like subschemas.
      const weight = 1 + (Array.isArray(n.enum) ? n.enum.length : 0);
      stack.push({ node: n, i: 0, sum: weight });
      return undefined;
    };
    const p0 = push(start);
    if (p0) return p0;
    while (stack.length > 0) {
      const f = stack[stack.length - 1]!;
      const same = edges.get(f.node)!.same;
      if (f.i < same.length) {
        const c = same[f.i++];
        if (!isObj(c)) {
          f.sum += 1;
          continue;
        }
        if (onStack.has(c)) {
          return { rule: 'schema_recursive', message: 'has subschemas that apply to the same value in a cycle (infinite validation)' };
        }
        const known = cost.get(c);
        if (known !== undefined) {
          f.sum += known;
        } else {
          const p = push(c);
          if (p) return p;
        }
      } else {
        stack.pop();
        onStack.delete(f.node);
        const total = Math.min(f.sum, Number.MAX_SAFE_INTEGER);
        if (total > limits.maxSchemaCost) {
          return {
            rule: 'schema_too_costly',
            message: `applies more than limits.maxSchemaCost (${limits.maxSchemaCost}) subschemas to one value`,
          };
        }
        cost.set(f.node, total);
        if (stack.length > 0) stack[stack.length - 1]!.sum += total;
      }
    }
  }
  return undefined;
}

/**
 * Names of the properties the schema declares for the top-level value, following allOf/anyOf/
 * oneOf/if/then/else/$ref; `patterns` collects patternProperties (RE2 syntax assumed checked).
 */
export function declaredProperties(schema: Json): { names: Set<string>; patterns: string[] } {
  const names = new Set<string>();
  const patterns: string[] = [];
  const seen = new Set<object>();
  const stack: Json[] = [schema];
  while (stack.length > 0) {
    const n = stack.pop();
    if (!isObj(n) || seen.has(n)) continue;
    seen.add(n);
    if (isObj(n.properties)) for (const k of Object.keys(n.properties)) names.add(k);
    if (isObj(n.patternProperties)) patterns.push(...Object.keys(n.patternProperties));
    if (typeof n.$ref === 'string') {
      const t = resolvePointer(schema, n.$ref);
      if (t !== undefined) stack.push(t);
    }
    for (const k of ['if', 'then', 'else']) if (k in n) stack.push(n[k]);
    for (const k of SAME_MANY) if (Array.isArray(n[k])) stack.push(...(n[k] as Json[]));
    for (const k of SAME_MAP) if (isObj(n[k])) stack.push(...Object.values(n[k] as Record<string, Json>));
  }
  return { names, patterns };
}

/**
 * Calls `fn` on every subschema object reachable from the root (through every applicator,
 * `$defs`/`definitions` and local `$ref`), once each. Only for schemas checkSchema() accepted.
 */
export function forEachSubschema(root: Json, fn: (node: Record<string, Json>) => void): void {
  const seen = new Set<object>();
  const stack: Json[] = [root];
  while (stack.length > 0) {
    const n = stack.pop();
    if (!isObj(n) || seen.has(n)) continue;
    seen.add(n);
    const e = edgesOf(n, root, n === root);
    if ('rule' in e) continue;
    stack.push(...e.same, ...e.child);
    fn(n);
  }
}
