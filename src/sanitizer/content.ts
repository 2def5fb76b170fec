/**
 * Walkers over the MCP shapes a model reads: content blocks (text, embedded resources, resource
 * links), resource contents, prompt and sampling messages, and arbitrary JSON (structured
 * content, log data, error data). Each string goes through `sanitizeText`; binary payloads
 * (`data`, `blob`) and identifiers (`uri`, `mimeType`, `type`) are left alone.
 *
 * The walkers work on a copy the caller owns (they replace strings in place) and add up findings.
 */
import { sanitizeText } from './text.js';
import type { Finding, SanitizePolicy } from './types.js';

const MAX_DEPTH = 64;
const SKIP_KEYS = new Set(['type', 'mimeType', 'uri', 'data', 'blob', 'role', '_meta']);

export class TextSink {
  readonly findings: Finding[] = [];
  block = false;
  changed = false;
  constructor(readonly policy: SanitizePolicy) {}

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

/** Every string value in a JSON value (object keys are kept). */
export function sanitizeJson(v: unknown, sink: TextSink, depth = 0): unknown {
  if (typeof v === 'string') return sink.text(v);
  if (depth > MAX_DEPTH || typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = sanitizeJson(v[i], sink, depth + 1);
    return v;
  }
  for (const k of Object.keys(v)) {
    if (SKIP_KEYS.has(k)) continue;
    (v as Obj)[k] = sanitizeJson((v as Obj)[k], sink, depth + 1);
  }
  return v;
}

/** One content block (tool result, prompt message, sampling message). */
export function sanitizeContentBlock(block: unknown, sink: TextSink): void {
  if (!isObj(block)) return;
  switch (block.type) {
    case 'text':
      if (typeof block.text === 'string') block.text = sink.text(block.text);
      return;
    case 'image':
    case 'audio':
      return;
    case 'resource':
      if (isObj(block.resource) && typeof block.resource.text === 'string') block.resource.text = sink.text(block.resource.text);
      return;
    case 'resource_link':
      for (const k of ['name', 'title', 'description'] as const) if (typeof block[k] === 'string') block[k] = sink.text(block[k]);
      return;
    default:
      // Unknown or future block types: every string the model might read.
      sanitizeJson(block, sink);
  }
}

function sanitizeBlocks(content: unknown, sink: TextSink): void {
  if (Array.isArray(content)) for (const b of content) sanitizeContentBlock(b, sink);
  else sanitizeContentBlock(content, sink);
}

/** tools/call result: content blocks and structuredContent. */
export function sanitizeToolResult(result: Obj, sink: TextSink): void {
  sanitizeBlocks(result.content, sink);
  if (result.structuredContent !== undefined) result.structuredContent = sanitizeJson(result.structuredContent, sink);
}

/** resources/read result: contents[].text. */
export function sanitizeResourceResult(result: Obj, sink: TextSink): void {
  if (!Array.isArray(result.contents)) return;
  for (const c of result.contents) if (isObj(c) && typeof c.text === 'string') c.text = sink.text(c.text);
}

/** prompts/get result: description and messages[].content. */
export function sanitizePromptResult(result: Obj, sink: TextSink): void {
  if (typeof result.description === 'string') result.description = sink.text(result.description);
  if (!Array.isArray(result.messages)) return;
  for (const m of result.messages) if (isObj(m)) sanitizeBlocks(m.content, sink);
}

/** sampling/createMessage params: messages[].content and systemPrompt. */
export function sanitizeSamplingParams(params: Obj, sink: TextSink): void {
  if (typeof params.systemPrompt === 'string') params.systemPrompt = sink.text(params.systemPrompt);
  if (!Array.isArray(params.messages)) return;
  for (const m of params.messages) if (isObj(m)) sanitizeBlocks(m.content, sink);
}

// ---------------------------------------------------------------- size cap

export type CapOutcome = { ok: true; truncatedBytes: number } | { ok: false; size: number };

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
