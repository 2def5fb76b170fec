/**
 * Walkers over the MCP shapes a model reads: content blocks (text, embedded resources, resource
 * links), resource contents, prompt and sampling messages, and arbitrary JSON (structured
 * content, log data, error data). Each string goes through `sanitizeText`; binary payloads
 * (`data`, `blob`) and identifiers (`uri`, `mimeType`, `type`) are left alone.
 *
 * The walkers are copy-on-write: they never modify what they are given, and return it as it is
 * when no string changed (the common case), else a shallow copy along the path to each changed
 * string (unchanged parts are shared). They add up findings in the sink.
 */
import { sanitizeText } from './text.js';
import type { Finding, SanitizePolicy } from './types.js';

const MAX_DEPTH = 64;
const SKIP_KEYS = new Set(['type', 'mimeType', 'uri', 'data', 'blob', 'role', '_meta']);

export class TextSink {
  readonly findings: Finding[] = [];
  block = false;
  changed = false;
  /** Set when a JSON value nests deeper than the walkers go: it cannot be scanned, so it is withheld. */
  tooDeep = false;
  constructor(readonly policy: SanitizePolicy) {}

  /** Fail closed on a value too deep to scan (strings below the limit would reach the model unchecked). */
  deep(): void {
    if (this.tooDeep) return;
    this.tooDeep = true;
    this.block = true;
    const message = `structured output nests deeper than ${MAX_DEPTH} levels, too deep to scan`;
    this.findings.push({ rule: 'limit.too-deep', kind: 'limit', severity: 'high', message, evidence: message });
  }

  text(s: string): string {
    if (s.length === 0) return s;
    const r = sanitizeText(s, this.policy);
    if (r.findings.length > 0) this.findings.push(...r.findings);
    if (r.block) this.block = true;
    if (r.changed) this.changed = true;
    return r.block ? s : r.text;
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `o` with `o[k]` set to `v`: `o` itself when it already holds `v`, else a shallow copy. */
function withKey(o: Obj, k: string, v: unknown): Obj {
  if (o[k] === v) return o;
  const c = { ...o };
  c[k] = v;
  return c;
}

/** `o` with its string `o[k]` sanitized (when it is a string). */
function withText(o: Obj, k: string, sink: TextSink): Obj {
  const s = o[k];
  return typeof s === 'string' ? withKey(o, k, sink.text(s)) : o;
}

/** Each item through `f`; the array itself when none changed. */
function mapItems(a: unknown[], f: (item: unknown) => unknown): unknown[] {
  let copy: unknown[] | undefined;
  for (let i = 0; i < a.length; i++) {
    const item = a[i];
    const next = f(item);
    if (next !== item) (copy ??= a.slice())[i] = next;
  }
  return copy ?? a;
}

/** Every string value in a JSON value (object keys are kept). */
export function sanitizeJson(v: unknown, sink: TextSink, depth = 0): unknown {
  if (typeof v === 'string') return sink.text(v);
  if (typeof v !== 'object' || v === null) return v;
  if (depth > MAX_DEPTH) {
    sink.deep();
    return v;
  }
  if (Array.isArray(v)) return mapItems(v, (item) => sanitizeJson(item, sink, depth + 1));
  let copy: Obj | undefined;
  for (const k of Object.keys(v)) {
    if (SKIP_KEYS.has(k)) continue;
    const item = (v as Obj)[k];
    const next = sanitizeJson(item, sink, depth + 1);
    // A spread copy holds every key (`__proto__` too) as an own property, so this sets that property.
    if (next !== item) (copy ??= { ...(v as Obj) })[k] = next;
  }
  return copy ?? v;
}

/** One content block (tool result, prompt message, sampling message). */
export function sanitizeContentBlock(block: unknown, sink: TextSink): unknown {
  if (!isObj(block)) return block;
  switch (block.type) {
    case 'text':
      return withText(block, 'text', sink);
    case 'image':
    case 'audio':
      return block;
    case 'resource':
      return isObj(block.resource) ? withKey(block, 'resource', withText(block.resource, 'text', sink)) : block;
    case 'resource_link': {
      let b = block;
      for (const k of ['name', 'title', 'description'] as const) b = withText(b, k, sink);
      return b;
    }
    default:
      // Unknown or future block types: every string the model might read.
      return sanitizeJson(block, sink);
  }
}

function sanitizeBlocks(content: unknown, sink: TextSink): unknown {
  return Array.isArray(content) ? mapItems(content, (b) => sanitizeContentBlock(b, sink)) : sanitizeContentBlock(content, sink);
}

/** Each message's content blocks (prompt and sampling messages). */
function sanitizeMessages(messages: unknown[], sink: TextSink): unknown[] {
  return mapItems(messages, (m) => (isObj(m) ? withKey(m, 'content', sanitizeBlocks(m.content, sink)) : m));
}

/** tools/call result: content blocks and structuredContent. */
export function sanitizeToolResult(result: Obj, sink: TextSink): Obj {
  let r = withKey(result, 'content', sanitizeBlocks(result.content, sink));
  if (r.structuredContent !== undefined) r = withKey(r, 'structuredContent', sanitizeJson(r.structuredContent, sink));
  return r;
}

/** resources/read result: contents[].text. */
export function sanitizeResourceResult(result: Obj, sink: TextSink): Obj {
  if (!Array.isArray(result.contents)) return result;
  return withKey(result, 'contents', mapItems(result.contents, (c) => (isObj(c) ? withText(c, 'text', sink) : c)));
}

/** prompts/get result: description and messages[].content. */
export function sanitizePromptResult(result: Obj, sink: TextSink): Obj {
  const r = withText(result, 'description', sink);
  return Array.isArray(r.messages) ? withKey(r, 'messages', sanitizeMessages(r.messages, sink)) : r;
}

/** sampling/createMessage params: messages[].content and systemPrompt. */
export function sanitizeSamplingParams(params: Obj, sink: TextSink): Obj {
  const p = withText(params, 'systemPrompt', sink);
  return Array.isArray(p.messages) ? withKey(p, 'messages', sanitizeMessages(p.messages, sink)) : p;
}

/** error: message and data. */
export function sanitizeErrorObject(error: Obj, sink: TextSink): Obj {
  const e = withText(error, 'message', sink);
  return e.data !== undefined ? withKey(e, 'data', sanitizeJson(e.data, sink)) : e;
}

/** notifications/message params: logger and data. */
export function sanitizeLogParams(params: Obj, sink: TextSink): Obj {
  const p = withText(params, 'logger', sink);
  return p.data !== undefined ? withKey(p, 'data', sanitizeJson(p.data, sink)) : p;
}

/** notifications/progress params: message. */
export function sanitizeProgressParams(params: Obj, sink: TextSink): Obj {
  return withText(params, 'message', sink);
}

// ---------------------------------------------------------------- size cap

export type CapOutcome = { ok: true; truncatedBytes: number } | { ok: false; size: number };

/** Longest JSON text of a number (`-0.0000012345678901234567` is 25 characters). */
const MAX_NUMBER_CHARS = 32;
/** Deeper values are measured exactly (a deep value is rare and the walk must stay bounded). */
const MAX_BOUND_DEPTH = 64;

/** Budget left after an upper bound of the UTF-8 size of `v` as JSON, or a negative number. */
function boundLeft(v: unknown, left: number, depth: number): number {
  switch (typeof v) {
    case 'string':
      // Each UTF-16 unit is at most 6 bytes of JSON (`\u001f`, a lone surrogate), plus quotes.
      return left - (v.length * 6 + 2);
    case 'number':
      return left - MAX_NUMBER_CHARS;
    case 'boolean':
      return left - 5;
    case 'undefined':
      return left - 4; // `null` in an array, nothing in an object
    case 'object': {
      if (v === null) return left - 4;
      if (depth >= MAX_BOUND_DEPTH || typeof (v as { toJSON?: unknown }).toJSON === 'function') return -1;
      left -= 2;
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length && left >= 0; i++) left = boundLeft(v[i], left - 1, depth + 1);
        return left;
      }
      for (const k of Object.keys(v)) {
        left = boundLeft((v as Obj)[k], left - (k.length * 6 + 4), depth + 1);
        if (left < 0) return left;
      }
      return left;
    }
    default:
      return -1; // bigint, function, symbol: let the exact measure decide (and throw as before)
  }
}

/**
 * True when the UTF-8 size of `JSON.stringify(v)` is surely at most `maxBytes`, from an upper
 * bound (6 bytes per UTF-16 unit of strings and keys, fixed costs for numbers and structure)
 * computed without serializing. False means "measure exactly": it may still be within. The walk
 * stops as soon as the budget is spent, so it costs at most O(maxBytes).
 */
export function jsonBytesAtMost(v: unknown, maxBytes: number): boolean {
  return maxBytes >= 0 && boundLeft(v, maxBytes, 0) >= 0;
}

function jsonBytes(v: unknown): number {
  return Buffer.byteLength(JSON.stringify(v) ?? '', 'utf8');
}

/** Text slots that may be cut, in document order. */
function textSlots(payload: Obj): Array<{ obj: Obj; key: string }> {
  const slots: Array<{ obj: Obj; key: string }> = [];
  const fromBlock = (b: unknown): void => {
    if (!isObj(b)) return;
    if (b.type === 'text' && typeof b.text === 'string') slots.push({ obj: b, key: 'text' });
    else if (b.type === 'resource' && isObj(b.resource) && typeof b.resource.text === 'string') slots.push({ obj: b.resource, key: 'text' });
  };
  const fromBlocks = (c: unknown): void => (Array.isArray(c) ? c.forEach(fromBlock) : fromBlock(c));
  fromBlocks(payload.content);
  if (Array.isArray(payload.contents)) for (const c of payload.contents) if (isObj(c) && typeof c.text === 'string') slots.push({ obj: c, key: 'text' });
  if (Array.isArray(payload.messages)) for (const m of payload.messages) if (isObj(m)) fromBlocks(m.content);
  return slots;
}

function cutString(s: string, keepChars: number): string {
  let cut = s.slice(0, Math.max(0, keepChars));
  const last = cut.charCodeAt(cut.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut = cut.slice(0, -1);
  return cut;
}

/**
 * Bring `payload` under `maxBytes` of JSON by cutting text from the end, with a marker saying
 * how much was cut. Fails (ok: false) when cutting every text slot is not enough (large
 * structured content, binary blobs).
 */
export function capPayload(payload: Obj, maxBytes: number): CapOutcome {
  const size = jsonBytes(payload);
  if (size <= maxBytes) return { ok: true, truncatedBytes: 0 };
  const slots = textSlots(payload);
  let over = size - maxBytes;
  for (let i = slots.length - 1; i >= 0 && over > 0; i--) {
    const { obj, key } = slots[i]!;
    const s = obj[key] as string;
    const marker = `\n[bastion: output truncated to fit ${maxBytes} bytes]`;
    const bytes = jsonBytes(s);
    if (bytes - 2 <= over + jsonBytes(marker)) {
      obj[key] = marker.trimStart();
    } else {
      // Proportional first guess, then tighten: JSON escaping makes bytes and characters differ.
      let keep = Math.floor(s.length * (1 - (over + jsonBytes(marker)) / bytes));
      let next = cutString(s, keep) + marker;
      while (keep > 0 && jsonBytes(next) > bytes - over) {
        keep = Math.floor(keep * 0.9) - 1;
        next = cutString(s, keep) + marker;
      }
      obj[key] = next;
    }
    over = jsonBytes(payload) - maxBytes;
  }
  const final = jsonBytes(payload);
  if (final > maxBytes) return { ok: false, size };
  return { ok: true, truncatedBytes: size - final };
}
