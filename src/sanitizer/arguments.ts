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

export function redactArgumentsForLog(args: unknown, opts: ArgumentLogOptions = {}): ArgumentLogResult {
  const maxString = opts.maxString ?? 256;
  const maxDepth = opts.maxDepth ?? 8;
  const maxItems = opts.maxItems ?? 50;
  const keyPlaceholder = opts.keyPlaceholder ?? placeholder('by-key');
  const redacted: Record<string, number> = {};
  let truncated = false;
  const seen = new WeakSet<object>();
  const count = (type: string): void => {
    redacted[type] = (redacted[type] ?? 0) + 1;
  };

  const walk = (v: unknown, depth: number): unknown => {
    if (typeof v === 'string') {
      const matches = findSecrets(v);
      for (const m of matches) count(m.type);
      let s = matches.length > 0 ? redactSecrets(v, matches).text : v;
      if (s.length > maxString) {
        truncated = true;
        // A secret may straddle the cut: the redaction above already ran on the whole string.
        s = `${s.slice(0, maxString)}…(+${s.length - maxString} chars)`;
      }
      return s;
    }
    if (typeof v === 'number' || typeof v === 'boolean' || v === null) return v;
    if (typeof v !== 'object') return `[${typeof v}]`;
    if (seen.has(v)) return '[cycle]';
    if (depth >= maxDepth) {
      truncated = true;
      return Array.isArray(v) ? `[array(${v.length})]` : '[object]';
    }
    seen.add(v);
    if (Array.isArray(v)) {
      const out = v.slice(0, maxItems).map((x) => walk(x, depth + 1));
      if (v.length > maxItems) {
        truncated = true;
        out.push(`…(+${v.length - maxItems} items)`);
      }
      return out;
    }
    const out: Record<string, unknown> = {};
    const keys = Object.keys(v);
    for (const k of keys.slice(0, maxItems)) {
      const val = (v as Record<string, unknown>)[k];
      let item: unknown;
      if (isSecretKey(k) && val !== null && val !== undefined && val !== '') {
        count('by-key');
        item = keyPlaceholder;
      } else item = walk(val, depth + 1);
      // `__proto__` stays a field (an assignment would set the prototype instead).
      if (k === '__proto__') Object.defineProperty(out, k, { value: item, enumerable: true, writable: true, configurable: true });
      else out[k] = item;
    }
    if (keys.length > maxItems) {
      truncated = true;
      out['…'] = `+${keys.length - maxItems} keys`;
    }
    return out;
  };

  const value = walk(args, 0);
  let bytes = 0;
  try {
    bytes = Buffer.byteLength(JSON.stringify(args) ?? '', 'utf8');
  } catch {
    bytes = 0;
  }
  const keys = typeof args === 'object' && args !== null && !Array.isArray(args) ? Object.keys(args).slice(0, maxItems) : [];
  return { value, summary: { keys, bytes, redacted, truncated } };
}
