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

/**
 * Shapes of secrets found inside strings: each with its replacement, and a `hint`: a pattern
 * (tested case-insensitively) that occurs inside EVERY match of the shape. The hints make the
 * cheap first test below; a new shape needs a hint that holds for all of its matches, and an
 * example in test/audit/redact.test.ts (the test fails for a shape without one).
 */
export const SECRET_SHAPES: ReadonlyArray<{ readonly name: string; readonly re: RegExp; readonly replacement: string; readonly hint: string }> = [
  // PEM private keys (any kind), even when cut short
  { name: 'pem', re: /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)/g, replacement: REDACTED, hint: '-----BEGIN ' },
  // JWT / JWS / JWE compact serialization (the header is base64url of '{"')
  { name: 'jwt', re: /\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{2,}(?:\.[A-Za-z0-9_-]*){1,3}/g, replacement: REDACTED, hint: 'eyJ' },
  // HTTP auth schemes followed by a credential (one with a digit or symbol, or a long run of
  // letters), so prose such as "Bearer authentication required" stays readable
  {
    name: 'auth-scheme',
    re: /\b([Bb]earer|BEARER|DPoP|[Dd]pop|DPOP|[Bb]asic|BASIC)\s+(?:(?=[A-Za-z0-9._~+/=-]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]{8,}|[A-Za-z]{20,})/g,
    replacement: `$1 ${REDACTED}`,
    hint: '(?:bearer|dpop|basic)\\s',
  },
  // AWS access key id, GitHub, Slack, Stripe, OpenAI/Anthropic-style, Google API keys
  { name: 'aws', re: /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g, replacement: REDACTED, hint: 'AKIA|ASIA' },
  { name: 'github', re: /\bgh[pousr]_[A-Za-z0-9]{30,}\b/g, replacement: REDACTED, hint: 'gh[pousr]_' },
  { name: 'github-pat', re: /\bgithub_pat_[A-Za-z0-9_]{30,}\b/g, replacement: REDACTED, hint: 'github_pat_' },
  { name: 'slack', re: /\bxox[abposr]-[A-Za-z0-9-]{10,}\b/g, replacement: REDACTED, hint: 'xox[abposr]-' },
  { name: 'stripe', re: /\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}\b/g, replacement: REDACTED, hint: '[rs]k_(?:live|test)_' },
  { name: 'sk', re: /\bsk-(?:[A-Za-z0-9_]+-)*[A-Za-z0-9_-]{20,}/g, replacement: REDACTED, hint: 'sk-' },
  { name: 'google', re: /\bAIza[0-9A-Za-z_-]{35}\b/g, replacement: REDACTED, hint: 'AIza' },
  // key=value pairs in URLs, query strings, connection strings and env dumps (the hint is the
  // end of every key name, then the same separator)
  {
    name: 'key-value',
    re: /\b((?:access_?token|refresh_?token|id_?token|api_?key|apikey|token|secret|password|passwd|client_secret|sig|signature)["']?\s*[=:]\s*)(["']?)[^\s&"',;]{6,}/gi,
    replacement: `$1$2${REDACTED}`,
    hint: '(?:token|secret|passw(?:or)?d|api_?key|sig(?:nature)?)["\']?\\s*[=:]',
  },
  // credentials in URLs: scheme://user:password@host
  { name: 'url-credentials', re: /\b([a-z][a-z0-9+.-]*:\/\/[^\s/:@]+:)[^\s/@]+@/gi, replacement: `$1${REDACTED}@`, hint: ':\\/\\/[^\\s/:@]+:[^\\s/@]+@' },
];

/**
 * The first test on every string: true when some shape MAY match (every match of a shape holds
 * its hint). Literal hints in one case-insensitive alternation cost a fraction of testing the
 * shapes themselves, and most strings (ids, names, prose) hold none of them.
 */
const ANY_HINT = new RegExp(SECRET_SHAPES.map((s) => `(?:${s.hint})`).join('|'), 'i');

function scrubShapes(s: string): string {
  let out = s;
  for (const { re, replacement } of SECRET_SHAPES) {
    re.lastIndex = 0;
    if (!re.test(out)) continue;
    re.lastIndex = 0;
    out = out.replace(re, replacement);
  }
  return out;
}

function scrubUncached(s: string): string {
  return ANY_HINT.test(s) ? scrubShapes(s) : s;
}

/**
 * What short strings become, by content: many repeat from event to event (event types, methods,
 * session ids, client addresses), and the answer depends on the string alone, so a string seen
 * again is not searched again (a secret seen again gets the same redacted text). Bounded: up to
 * VALUE_CACHE_MAX strings of at most VALUE_CACHE_MAX_LENGTH characters, dropped all at once when
 * full. A dictionary object rather than a Map: its keys are internalized copies, so a cached
 * string never keeps alive a large string it was sliced from (a Map key would).
 */
const VALUE_CACHE_MAX = 10_000;
const VALUE_CACHE_MAX_LENGTH = 64;
/** Cached for a string that scrubbing leaves as it is. */
const UNCHANGED = 0;
let valueCache: Record<string, string | typeof UNCHANGED> = Object.create(null) as Record<string, string | typeof UNCHANGED>;
let valueCacheSize = 0;

/**
 * Hex digits and hyphens only (UUIDs such as request ids, trace ids, hex digests): no hint above
 * can occur in such a string (every hint needs a character outside 0-9, a-f and '-', in either
 * case; a test checks each shape's hint), so it is returned as it is, before the cache: looking
 * up a string seen once (every request id) costs more than this test, and it would only fill
 * the cache.
 */
const HEX_ONLY = /^[0-9a-f-]*$/i;

function scrubString(s: string): string {
  if (s.length < 8 || HEX_ONLY.test(s)) return s;
  if (s.length > VALUE_CACHE_MAX_LENGTH) return scrubUncached(s);
  const hit = valueCache[s];
  if (hit !== undefined) return hit === UNCHANGED ? s : hit;
  const out = scrubUncached(s);
  if (valueCacheSize >= VALUE_CACHE_MAX) {
    valueCache = Object.create(null) as Record<string, string | typeof UNCHANGED>;
    valueCacheSize = 0;
  }
  valueCache[s] = out === s ? UNCHANGED : out;
  valueCacheSize++;
  return out;
}

/** Test hook: the number of strings in the scrub cache (bounded by VALUE_CACHE_MAX). */
export function scrubCacheSize(): number {
  return valueCacheSize;
}

function normalizeKey(k: string): string {
  return k.toLowerCase().replace(/[-_]/g, '');
}

/**
 * Endings that make a key a secret whatever comes before: `github_token`, `slackToken`,
 * `db-password`, `stripe_api_key`, `aws_secret`. (`max_tokens`, `token_type`, `tokenCount` end
 * otherwise and stay visible.)
 */
const SECRET_KEY_SUFFIXES = ['token', 'secret', 'password', 'passwd', 'passphrase', 'apikey', 'privatekey', 'secretkey', 'credential', 'credentials'];

/** A key whose value is always a secret (`authorization`, `password`, `client_secret`, ...). */
export function isSecretKey(k: string): boolean {
  return SECRET_KEYS.has(normalizeKey(k));
}

/**
 * A key whose value is a secret when it is a string: the exact names above, and any key ending
 * in one of SECRET_KEY_SUFFIXES. Numbers and objects under such keys stay (a stage timing named
 * `identity.bearer-token` is a duration, not a credential).
 */
export function isSecretStringKey(k: string): boolean {
  const n = normalizeKey(k);
  if (SECRET_KEYS.has(n)) return true;
  for (const suffix of SECRET_KEY_SUFFIXES) if (n.endsWith(suffix)) return true;
  return false;
}

function redactsValue(k: string, v: unknown): boolean {
  if (v === null || v === '') return false;
  return isSecretKey(k) || (typeof v === 'string' && isSecretStringKey(k));
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
      const value = redactsValue(k, v) ? REDACTED : scrub(v, depth + 1, seen);
      if (k === '__proto__') Object.defineProperty(out, k, { value, enumerable: true, writable: true, configurable: true });
      else out[scrubString(k)] = value;
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

/** A key as written (cut to 128 characters, scrubbed) and whether its value is a secret. */
interface KeyInfo {
  readonly out: string;
  /** Any non-empty value under this key is redacted. */
  readonly secret: boolean;
  /** A string value under this key is redacted. */
  readonly secretString: boolean;
}

/**
 * Keys repeat from event to event (event fields, stage names, argument names), so what a key
 * becomes is worked out once per key string. Both parts depend on the key alone, so a cached
 * answer is the one a fresh look would give. Bounded: cleared when full; keys over 128
 * characters are not kept. (Property names are internalized strings, so a kept key never holds
 * on to a larger string it was cut from.)
 */
const KEY_CACHE_MAX = 4096;
const keyCache = new Map<string, KeyInfo>();

function keyInfo(k: string): KeyInfo {
  let info = keyCache.get(k);
  if (info === undefined) {
    info = { out: scrubString(k.length > 128 ? `${k.slice(0, 128)}…` : k), secret: isSecretKey(k), secretString: isSecretStringKey(k) };
    if (k.length <= 128) {
      if (keyCache.size >= KEY_CACHE_MAX) keyCache.clear();
      keyCache.set(k, info);
    }
  }
  return info;
}

/**
 * Scrub and summarize in one pass, cutting before scrubbing so a huge value costs no more than
 * its summary: long strings are hashed (SHA-256 of the value as given) and only a short head is
 * scrubbed and kept; long arrays and wide objects are cut before their items are visited.
 * This is what the audit log applies to every event before any sink sees it.
 */
export function cleanForAudit(value: unknown, limits: SummarizeLimits = DEFAULT_SUMMARIZE, depth = 0): unknown {
  return clean(value, limits, depth, []);
}

/**
 * cleanForAudit of the fields of a plain object, written into `into` in the object's order (a
 * key that `into` already has keeps its place): lets the audit log put its envelope fields
 * first without copying the cleaned event again.
 */
export function cleanFieldsForAudit(value: object, into: Record<string, unknown>, limits: SummarizeLimits = DEFAULT_SUMMARIZE): Record<string, unknown> {
  return cleanObject(value as Record<string, unknown>, into, limits, 0, [value]);
}

/** `ancestors` holds the objects on the path from the root (a cycle is an ancestor seen again). */
function clean(value: unknown, limits: SummarizeLimits, depth: number, ancestors: object[]): unknown {
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
  if (ancestors.includes(value)) return '[cycle]';
  ancestors.push(value);
  try {
    if (Array.isArray(value)) {
      const items = value.slice(0, limits.maxArray).map((v) => clean(v, limits, depth + 1, ancestors));
      if (value.length > limits.maxArray) items.push({ $summary: 'truncated', length: value.length });
      return items;
    }
    if (Object.getPrototypeOf(value) !== Object.prototype) {
      if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
      if (value instanceof Set) return clean([...value], limits, depth, ancestors);
      if (value instanceof Uint8Array) return { $summary: 'bytes', length: value.byteLength };
      if (value instanceof Error) return { name: value.name, message: scrubString(value.message.slice(0, limits.maxString)) };
      if (value instanceof Map) return cleanObject(Object.fromEntries(value), {}, limits, depth, ancestors);
    }
    return cleanObject(value as Record<string, unknown>, {}, limits, depth, ancestors);
  } finally {
    ancestors.pop();
  }
}

function cleanObject(src: Record<string, unknown>, out: Record<string, unknown>, limits: SummarizeLimits, depth: number, ancestors: object[]): Record<string, unknown> {
  let n = 0;
  let total = 0;
  for (const k in src) {
    if (!Object.prototype.hasOwnProperty.call(src, k)) continue;
    total++;
    if (n >= limits.maxKeys) continue;
    const v = src[k];
    if (v === undefined) continue;
    n++;
    const key = keyInfo(k);
    const value = (key.secret || (key.secretString && typeof v === 'string')) && v !== null && v !== '' ? REDACTED : clean(v, limits, depth + 1, ancestors);
    // `__proto__` must stay a field of the record (an assignment would set the prototype instead).
    if (key.out === '__proto__') Object.defineProperty(out, key.out, { value, enumerable: true, writable: true, configurable: true });
    else out[key.out] = value;
  }
  if (total > limits.maxKeys) out.$truncatedKeys = total - limits.maxKeys;
  return out;
}
