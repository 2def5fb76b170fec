/**
 * The last line of defense before a sink writes: remove anything that looks like a credential,
 * and summarize large values so a record stays small.
 *
 * Emitting code already leaves tokens out of events; this scrubber exists because "already" is a
 * promise made by many hands. It runs once per event on the drain path (never on the request
 * path), on every field: by key name (`authorization`, `password`, `client_secret`, ...) and by
 * shape (JWTs, `Bearer ...`, PEM private keys, well-known API key formats, `token=...` in URLs).
 */
import { createHash } from 'node:crypto';

export const REDACTED = '[redacted]';

/** Keys whose value is always a secret (compared lower-case with `-`/`_` removed). */
const SECRET_KEYS = new Set([
  'authorization',
  'proxyauthorization',
  'cookie',
  'setcookie',
  'dpop',
  'xapikey',
  'apikey',
  'token',
  'accesstoken',
  'refreshtoken',
  'idtoken',
  'bearertoken',
  'sessiontoken',
  'password',
  'passwd',
  'passphrase',
  'secret',
  'clientsecret',
  'privatekey',
  'secretkey',
  'secretaccesskey',
  'credential',
  'credentials',
  'assertion',
  'clientassertion',
  'codeverifier',
]);

/** Shapes of secrets found inside strings, each with its replacement. */
const SECRET_PATTERNS: ReadonlyArray<readonly [RegExp, string]> = [
  // PEM private keys (any kind), even when cut short
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)/g, REDACTED],
  // JWT / JWS / JWE compact serialization (the header is base64url of '{"')
  [/\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{2,}(?:\.[A-Za-z0-9_-]*){1,3}/g, REDACTED],
  // HTTP auth schemes followed by a credential (one with a digit or symbol, or a long run of
  // letters), so prose such as "Bearer authentication required" stays readable
  [/\b([Bb]earer|BEARER|DPoP|[Dd]pop|DPOP|[Bb]asic|BASIC)\s+(?:(?=[A-Za-z0-9._~+/=-]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]{8,}|[A-Za-z]{20,})/g, `$1 ${REDACTED}`],
  // AWS access key id, GitHub, Slack, Stripe, OpenAI/Anthropic-style, Google API keys
  [/\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g, REDACTED],
  [/\bgh[pousr]_[A-Za-z0-9]{30,}\b/g, REDACTED],
  [/\bgithub_pat_[A-Za-z0-9_]{30,}\b/g, REDACTED],
  [/\bxox[abposr]-[A-Za-z0-9-]{10,}\b/g, REDACTED],
  [/\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}\b/g, REDACTED],
  [/\bsk-(?:[A-Za-z0-9_]+-)*[A-Za-z0-9_-]{20,}/g, REDACTED],
  [/\bAIza[0-9A-Za-z_-]{35}\b/g, REDACTED],
  // key=value pairs in URLs, query strings, connection strings and env dumps
  [/\b((?:access_?token|refresh_?token|id_?token|api_?key|apikey|token|secret|password|passwd|client_secret|sig|signature)["']?\s*[=:]\s*)(["']?)[^\s&"',;]{6,}/gi, `$1$2${REDACTED}`],
  // credentials in URLs: scheme://user:password@host
  [/\b([a-z][a-z0-9+.-]*:\/\/[^\s/:@]+:)[^\s/@]+@/gi, `$1${REDACTED}@`],
];

/** One pass over the string decides whether any pattern can match (most strings are clean). */
const ANY_SECRET = new RegExp(SECRET_PATTERNS.map(([re]) => `(?:${re.source})`).join('|'), 'i');

function scrubString(s: string): string {
  if (s.length < 8 || !ANY_SECRET.test(s)) return s;
  let out = s;
  for (const [re, replacement] of SECRET_PATTERNS) {
    re.lastIndex = 0;
    if (!re.test(out)) continue;
    re.lastIndex = 0;
    out = out.replace(re, replacement);
  }
  return out;
}

function normalizeKey(k: string): string {
  return k.toLowerCase().replace(/[-_]/g, '');
}

export function isSecretKey(k: string): boolean {
  return SECRET_KEYS.has(normalizeKey(k));
}

const MAX_DEPTH = 12;

/**
 * A deep copy of `value` with every secret-looking key and string replaced by `[redacted]`.
 * Never throws (cycles and exotic objects become a placeholder).
 */
export function scrub(value: unknown, depth = 0, seen: WeakSet<object> = new WeakSet()): unknown {
  if (typeof value === 'string') return scrubString(value);
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'bigint') return value.toString();
    if (typeof value === 'function' || typeof value === 'symbol') return undefined;
    return value;
  }
  if (depth > MAX_DEPTH) return '[depth]';
  if (seen.has(value)) return '[cycle]';
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1, seen));
    if (value instanceof Date) return value.toISOString();
    if (value instanceof Set) return [...value].map((v) => scrub(v, depth + 1, seen));
    if (value instanceof Map) value = Object.fromEntries(value);
    if (value instanceof Uint8Array) return { $summary: 'bytes', length: value.byteLength };
    if (value instanceof Error) return { name: value.name, message: scrubString(value.message) };
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (v === undefined) continue;
      out[scrubString(k)] = isSecretKey(k) && v !== null && v !== '' ? REDACTED : scrub(v, depth + 1, seen);
    }
    return out;
  } finally {
    seen.delete(value as object);
  }
}

export interface SummarizeLimits {
  /** Strings longer than this become `{$summary: 'string', length, sha256, head}`. */
  maxString: number;
  /** Arrays longer than this keep the first items and `{$summary: 'truncated', length}`. */
  maxArray: number;
  /** Objects with more keys keep the first ones. */
  maxKeys: number;
  /** Deeper values become `{$summary: 'depth'}`. */
  maxDepth: number;
}

export const DEFAULT_SUMMARIZE: SummarizeLimits = { maxString: 512, maxArray: 32, maxKeys: 64, maxDepth: 6 };

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/**
 * Bound the size of a value (tool arguments, results) for the record: long strings become a
 * length, a SHA-256 (so an investigator can match a known value) and a short head; long arrays
 * and wide objects are cut with a note of what was cut.
 */
export function summarize(value: unknown, limits: SummarizeLimits = DEFAULT_SUMMARIZE, depth = 0): unknown {
  if (typeof value === 'string') {
    if (value.length <= limits.maxString) return value;
    return { $summary: 'string', length: value.length, sha256: sha256(value), head: value.slice(0, 64) };
  }
  if (value === null || typeof value !== 'object') return value;
  if (depth >= limits.maxDepth) return { $summary: 'depth' };
  if (Array.isArray(value)) {
    const items = value.slice(0, limits.maxArray).map((v) => summarize(v, limits, depth + 1));
    if (value.length > limits.maxArray) items.push({ $summary: 'truncated', length: value.length });
    return items;
  }
  const entries = Object.entries(value as Record<string, unknown>);
  const out: Record<string, unknown> = {};
  for (const [k, v] of entries.slice(0, limits.maxKeys)) out[k] = summarize(v, limits, depth + 1);
  if (entries.length > limits.maxKeys) out.$truncatedKeys = entries.length - limits.maxKeys;
  return out;
}

/**
 * Scrub and summarize in one pass, cutting before scrubbing so a huge value costs no more than
 * its summary: long strings are hashed (SHA-256 of the value as given) and only a short head is
 * scrubbed and kept; long arrays and wide objects are cut before their items are visited.
 * This is what the audit log applies to every event before any sink sees it.
 */
export function cleanForAudit(value: unknown, limits: SummarizeLimits = DEFAULT_SUMMARIZE, depth = 0, seen: WeakSet<object> = new WeakSet()): unknown {
  if (typeof value === 'string') {
    if (value.length <= limits.maxString) return scrubString(value);
    return { $summary: 'string', length: value.length, sha256: sha256(value), head: scrubString(value.slice(0, 256)).slice(0, 64) };
  }
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'bigint') return value.toString();
    if (typeof value === 'function' || typeof value === 'symbol') return undefined;
    return value;
  }
  if (depth >= limits.maxDepth) return { $summary: 'depth' };
  if (seen.has(value)) return '[cycle]';
  seen.add(value);
  try {
    if (Array.isArray(value)) {
      const items = value.slice(0, limits.maxArray).map((v) => cleanForAudit(v, limits, depth + 1, seen));
      if (value.length > limits.maxArray) items.push({ $summary: 'truncated', length: value.length });
      return items;
    }
    if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
    if (value instanceof Set) return cleanForAudit([...value], limits, depth, seen);
    if (value instanceof Uint8Array) return { $summary: 'bytes', length: value.byteLength };
    if (value instanceof Error) return { name: value.name, message: scrubString(value.message.slice(0, limits.maxString)) };
    const src = value instanceof Map ? Object.fromEntries(value) : (value as Record<string, unknown>);
    const out: Record<string, unknown> = {};
    let n = 0;
    let total = 0;
    for (const k in src) {
      if (!Object.prototype.hasOwnProperty.call(src, k)) continue;
      total++;
      if (n >= limits.maxKeys) continue;
      const v = src[k];
      if (v === undefined) continue;
      n++;
      const key = k.length > 128 ? `${k.slice(0, 128)}…` : k;
      out[scrubString(key)] = isSecretKey(k) && v !== null && v !== '' ? REDACTED : cleanForAudit(v, limits, depth + 1, seen);
    }
    if (total > limits.maxKeys) out.$truncatedKeys = total - limits.maxKeys;
    return out;
  } finally {
    seen.delete(value);
  }
}
