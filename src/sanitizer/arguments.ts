/**
 * tools/call arguments for audit records and logs: secrets never in clear.
 *
 * `redactArgumentsForLog` returns a copy of the arguments that is safe to log: values under
 * secret-named keys (password, token, apiKey, authorization, cookie, ...) are replaced whole,
 * secrets found inside any string are replaced by typed placeholders, long strings are cut, and
 * depth, key count and array length are bounded. `summary` says what was done, without values.
 * Pure and synchronous; never throws on odd input (cycles, non-JSON values).
 */
import { findSecrets, placeholder, redactSecrets } from './secrets.js';

export interface ArgumentLogOptions {
  /** Longest string kept (characters); longer ones are cut with a note. Default 256. */
  maxString?: number;
  /** Deepest nesting kept. Default 8. */
  maxDepth?: number;
  /** Most keys kept per object / items per array. Default 50. */
  maxItems?: number;
  /** What replaces a value under a secret-named key. Default `[REDACTED:by-key]`. */
  keyPlaceholder?: string;
}

export interface ArgumentLogSummary {
  /** Top-level argument names (never values). */
  keys: string[];
  /** Size of the arguments' JSON in bytes (0 when not serializable). */
  bytes: number;
  /** Secrets replaced, by placeholder type (`by-key` for secret-named keys). */
  redacted: Record<string, number>;
  /** True when a string, depth, key or item limit cut something. */
  truncated: boolean;
}

export interface ArgumentLogResult {
  /** Safe-to-log copy of the arguments. */
  value: unknown;
  summary: ArgumentLogSummary;
}

/** Keys whose values are secrets whatever they look like. */
const SECRET_KEY =
  /^(?:.*[_.-])?(?:pass(?:word|wd|phrase)?|pwd|secret|client[_-]?secret|token|access[_-]?token|refresh[_-]?token|id[_-]?token|api[_-]?key|apikey|x[_-]?api[_-]?key|auth|authorization|proxy[_-]?authorization|cookie|set[_-]?cookie|session(?:[_-]?id)?|private[_-]?key|credentials?|bearer|dpop|otp|pin|cvv|cvc|ssn)$/i;
const CAMEL_SECRET = /(?:Password|Passwd|Passphrase|Secret|Token|ApiKey|PrivateKey|Credential|Credentials|Cookie|Authorization)$/;

export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key) || CAMEL_SECRET.test(key);
}

interface WalkState {
  maxString: number;
  maxDepth: number;
  maxItems: number;
  keyPlaceholder: string;
  /** Objects visited (a value met again is `[cycle]`); none for values known to be trees. */
  seen: WeakSet<object> | undefined;
  /** Secrets replaced, by type; none when nobody reads the count. */
  redacted: Record<string, number> | undefined;
  truncated: boolean;
}

function count(st: WalkState, type: string): void {
  if (st.redacted) st.redacted[type] = (st.redacted[type] ?? 0) + 1;
}

function walk(st: WalkState, v: unknown, depth: number): unknown {
  if (typeof v === 'string') {
    const matches = findSecrets(v);
    for (const m of matches) count(st, m.type);
    let s = matches.length > 0 ? redactSecrets(v, matches).text : v;
    if (s.length > st.maxString) {
      st.truncated = true;
      // A secret may straddle the cut: the redaction above already ran on the whole string.
      s = `${s.slice(0, st.maxString)}…(+${s.length - st.maxString} chars)`;
    }
    return s;
  }
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return v;
  if (typeof v !== 'object') return `[${typeof v}]`;
  if (st.seen?.has(v)) return '[cycle]';
  if (depth >= st.maxDepth) {
    st.truncated = true;
    return Array.isArray(v) ? `[array(${v.length})]` : '[object]';
  }
  st.seen?.add(v);
  if (Array.isArray(v)) {
    const out = v.slice(0, st.maxItems).map((x) => walk(st, x, depth + 1));
    if (v.length > st.maxItems) {
      st.truncated = true;
      out.push(`…(+${v.length - st.maxItems} items)`);
    }
    return out;
  }
  const out: Record<string, unknown> = {};
  const keys = Object.keys(v);
  const n = Math.min(keys.length, st.maxItems);
  for (let i = 0; i < n; i++) {
    const k = keys[i] as string;
    const val = (v as Record<string, unknown>)[k];
    let item: unknown;
    if (isSecretKey(k) && val !== null && val !== undefined && val !== '') {
      count(st, 'by-key');
      item = st.keyPlaceholder;
    } else item = walk(st, val, depth + 1);
    // `__proto__` stays a field (an assignment would set the prototype instead).
    if (k === '__proto__') Object.defineProperty(out, k, { value: item, enumerable: true, writable: true, configurable: true });
    else out[k] = item;
  }
  if (keys.length > st.maxItems) {
    st.truncated = true;
    out['…'] = `+${keys.length - st.maxItems} keys`;
  }
  return out;
}

function walkState(opts: ArgumentLogOptions, tree: boolean): WalkState {
  return {
    maxString: opts.maxString ?? 256,
    maxDepth: opts.maxDepth ?? 8,
    maxItems: opts.maxItems ?? 50,
    keyPlaceholder: opts.keyPlaceholder ?? placeholder('by-key'),
    seen: tree ? undefined : new WeakSet<object>(),
    redacted: tree ? undefined : {},
    truncated: false,
  };
}

/**
 * The safe copy alone (redactArgumentsForLog's `value`), for a value known to be a tree (no
 * object in it twice), such as JSON.parse output or the audit log's cleaned copies (with
 * shared or cyclic references the walk is bounded only by maxDepth and maxItems). No summary.
 */
export function redactTreeForLog(tree: unknown, opts: ArgumentLogOptions = {}): unknown {
  return walk(walkState(opts, true), tree, 0);
}

export function redactArgumentsForLog(args: unknown, opts: ArgumentLogOptions = {}): ArgumentLogResult {
  const st = walkState(opts, false);
  const value = walk(st, args, 0);
  let bytes = 0;
  try {
    bytes = Buffer.byteLength(JSON.stringify(args) ?? '', 'utf8');
  } catch {
    bytes = 0;
  }
  const keys = typeof args === 'object' && args !== null && !Array.isArray(args) ? Object.keys(args).slice(0, st.maxItems) : [];
  return { value, summary: { keys, bytes, redacted: st.redacted!, truncated: st.truncated } };
}
