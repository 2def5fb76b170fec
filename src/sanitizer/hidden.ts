/**
 * Hidden characters: terminal escape sequences and invisible Unicode.
 *
 * What a person reviewing a tool result sees should be what the model reads. Terminal escapes
 * (CSI, OSC including OSC 8 hyperlinks, DCS/APC/PM/SOS strings, 8-bit C1 controls) can hide or
 * rewrite text on a terminal; Unicode tag characters carry invisible ASCII ("ASCII smuggling");
 * bidi embedding/override/isolate controls reorder what is displayed (Trojan Source); runs of
 * variation selectors can smuggle bytes after an emoji; zero-width characters split keywords.
 *
 * Legitimate uses are kept: a single variation selector (emoji presentation, ideographic
 * variants), ZWJ inside emoji sequences, ZWJ/ZWNJ between letters of scripts that need them,
 * tag sequences of subdivision flags, and LRM/RLM in text that has right-to-left script.
 *
 * One pass per family with precompiled, linear regular expressions (no nested quantifiers).
 */
import type { Finding, HiddenAction, Severity } from './types.js';

/**
 * ESC-introduced sequences and 8-bit C1 sequences, and other C0/C1 controls (not TAB, LF, CR).
 * An OSC/DCS/APC string with no terminator runs to the end of the text, as a terminal would
 * swallow it.
 */
const ANSI_RE =
  // eslint-disable-next-line no-control-regex
  /\x1b(?:\[[0-?]*[ -/]*[@-~]?|\][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?|[PX^_][^\x1b\x9c]*(?:\x1b\\|\x9c)?|[ -/]*[0-~]?)|\x9b[0-?]*[ -/]*[@-~]?|\x9d[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?|[\x90\x98\x9e\x9f][^\x1b\x9c]*(?:\x1b\\|\x9c)?|[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f-\x9f]/g;
// eslint-disable-next-line no-control-regex
const ANSI_QUICK = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]/;
// eslint-disable-next-line no-control-regex
const SGR_ONLY = /^\x1b\[[0-9;:]*m$/;
// eslint-disable-next-line no-control-regex
const OSC8 = /^(?:\x1b\]|\x9d)8;/;

/** Families of invisible code points, one alternation, one pass. */
// The classes list combining and joining characters on purpose: they are what is being removed.
const INVISIBLE_RE =
  // eslint-disable-next-line no-misleading-character-class
  /(?<tags>[\u{E0000}-\u{E007F}]+)|(?<vs>[\uFE00-\uFE0F\u{E0100}-\u{E01EF}]+)|(?<bidi>[\u202A-\u202E\u2066-\u2069])|(?<mark>[\u200E\u200F\u061C])|(?<joiner>[\u200C\u200D])|(?<zw>[\u200B\u2060-\u2064\uFEFF\u180E\u00AD\u034F\u115F\u1160\u3164\uFFA0\u17B4\u17B5\u2028\u2029])/gu;
// eslint-disable-next-line no-misleading-character-class
const INVISIBLE_QUICK = /[\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180E\u200B-\u200F\u2028-\u202E\u2060-\u2069\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uDB40]/;
/**
 * Every character either pass above can act on (the union of ANSI_QUICK and INVISIBLE_QUICK; the
 * high surrogate U+DB40 covers tag characters and the supplementary variation selectors). Text
 * without one is returned as it is after a single scan: the common case.
 */
// eslint-disable-next-line no-control-regex, no-misleading-character-class
const ANY_HIDDEN = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180E\u200B-\u200F\u2028-\u202E\u2060-\u2069\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uDB40]/;
const RTL_RE = /[\p{Script=Hebrew}\p{Script=Arabic}\p{Script=Syriac}\p{Script=Thaana}\p{Script=Nko}]/u;
// eslint-disable-next-line no-misleading-character-class
const EMOJI_NEIGHBOUR = /[\p{Extended_Pictographic}\u{1F3FB}-\u{1F3FF}\uFE0F\u20E3]/u;
/** Letters of scripts where ZWJ/ZWNJ shape words (Arabic, Indic, ...): any letter that is not Latin. */
const JOINING_LETTER = /[\p{L}\p{M}]/u;
// eslint-disable-next-line no-control-regex
const LATIN_OR_ASCII = /[\p{Script=Latin}\x00-\x7f]/u;
const FLAG_TAGS = /^[\u{E0030}-\u{E0039}\u{E0061}-\u{E007A}]{2,6}\u{E007F}$/u;

export interface HiddenOptions {
  ansi: HiddenAction;
  invisible: HiddenAction;
  zeroWidth: HiddenAction;
}

export interface HiddenResult {
  text: string;
  findings: Finding[];
  /** ASCII carried by tag characters and bytes carried by variation-selector runs, decoded, for the injection scan. */
  smuggled: string;
}

function escapeCodePoints(s: string): string {
  let out = '';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    out += cp <= 0xff ? `\\x${cp.toString(16).padStart(2, '0')}` : `\\u{${cp.toString(16).toUpperCase()}}`;
  }
  return out;
}

/** Escape control characters of an ANSI sequence, keeping its printable body readable. */
function escapeControls(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function codePointBefore(text: string, i: number): string {
  if (i <= 0) return '';
  const low = text.charCodeAt(i - 1);
  if (low >= 0xdc00 && low <= 0xdfff && i >= 2) return text.slice(i - 2, i);
  return text[i - 1]!;
}

function codePointAt(text: string, i: number): string {
  if (i >= text.length) return '';
  const cp = text.codePointAt(i)!;
  return String.fromCodePoint(cp);
}

/** Decode variation-selector smuggling: VS1..VS16 are bytes 0..15, VS17..VS256 are 16..255. */
function decodeSelectors(run: string): string {
  const bytes: number[] = [];
  for (const ch of run) {
    const cp = ch.codePointAt(0)!;
    if (cp >= 0xfe00 && cp <= 0xfe0f) bytes.push(cp - 0xfe00);
    else if (cp >= 0xe0100 && cp <= 0xe01ef) bytes.push(cp - 0xe0100 + 16);
  }
  return Buffer.from(bytes).toString('utf8');
}

interface Tally {
  count: number;
  severity: Severity;
}

function bump(map: Map<string, Tally>, rule: string, severity: Severity, n = 1): void {
  const t = map.get(rule);
  if (t === undefined) map.set(rule, { count: n, severity });
  else {
    t.count += n;
    if (severity === 'high' || (severity === 'medium' && t.severity === 'low')) t.severity = severity;
  }
}

const MESSAGES: Record<string, string> = {
  'hidden.ansi': 'terminal escape sequences (can hide or rewrite text on a terminal)',
  'hidden.osc8-hyperlink': 'OSC 8 terminal hyperlinks (the link target is not shown)',
  'hidden.control-chars': 'control characters',
  'hidden.unicode-tags': 'Unicode tag characters (invisible text)',
  'hidden.variation-selectors': 'runs of variation selectors (bytes smuggled after a visible character)',
  'hidden.bidi': 'bidirectional control characters (display order differs from logical order)',
  'hidden.zero-width': 'zero-width characters',
};

/**
 * Remove, escape or keep hidden characters. Counts them per family; the findings carry counts,
 * never the hidden content itself (the decoded smuggled text is returned separately for the
 * injection scan).
 */
export function processHidden(text: string, opts: HiddenOptions): HiddenResult {
  if (!ANY_HIDDEN.test(text)) return { text, findings: [], smuggled: '' };
  return processHiddenFull(text, opts);
}

/**
 * processHidden without the single-scan pre-check: the detailed passes only. Exported so a test
 * can show the pre-check never skips a character these passes would act on.
 */
export function processHiddenFull(text: string, opts: HiddenOptions): HiddenResult {
  const tally = new Map<string, Tally>();
  let smuggled = '';
  let out = text;

  if (opts.ansi !== 'off' && ANSI_QUICK.test(out)) {
    out = out.replace(ANSI_RE, (m) => {
      if (m.charCodeAt(0) === 0x1b || m.charCodeAt(0) === 0x9b || m.charCodeAt(0) === 0x9d || m.length > 1) {
        if (OSC8.test(m)) bump(tally, 'hidden.osc8-hyperlink', 'medium');
        else bump(tally, 'hidden.ansi', SGR_ONLY.test(m) ? 'low' : 'medium');
      } else {
        bump(tally, 'hidden.control-chars', m === '\b' || m.charCodeAt(0) >= 0x80 ? 'medium' : 'low');
      }
      return opts.ansi === 'escape' ? escapeControls(m) : '';
    });
  }

  const wantInvisible = opts.invisible !== 'off' || opts.zeroWidth !== 'off';
  if (wantInvisible && INVISIBLE_QUICK.test(out)) {
    let rtl: boolean | undefined;
    const src = out;
    out = src.replace(INVISIBLE_RE, (m: string, ...args: unknown[]) => {
      const groups = args[args.length - 1] as Record<string, string | undefined>;
      const offset = args[args.length - 3] as number;
      let family: 'invisible' | 'zeroWidth';
      let rule: string;
      let severity: Severity;
      if (groups.tags !== undefined) {
        if (codePointBefore(src, offset) === '\u{1F3F4}' && FLAG_TAGS.test(m)) return m;
        for (const ch of m) {
          const c = ch.codePointAt(0)! - 0xe0000;
          if (c >= 0x20 && c < 0x7f) smuggled += String.fromCharCode(c);
          else if (c === 0x0a || c === 0x0d || c === 0x09) smuggled += ' ';
        }
        family = 'invisible';
        rule = 'hidden.unicode-tags';
        severity = 'high';
      } else if (groups.vs !== undefined) {
        if ([...m].length === 1) return m;
        smuggled += ` ${decodeSelectors(m)} `;
        family = 'invisible';
        rule = 'hidden.variation-selectors';
        severity = 'medium';
      } else if (groups.bidi !== undefined) {
        family = 'invisible';
        rule = 'hidden.bidi';
        severity = 'medium';
      } else if (groups.mark !== undefined) {
        rtl ??= RTL_RE.test(src);
        if (rtl) return m;
        family = 'invisible';
        rule = 'hidden.bidi';
        severity = 'low';
      } else if (groups.joiner !== undefined) {
        const before = codePointBefore(src, offset);
        const after = codePointAt(src, offset + m.length);
        if (m === '\u200D' && EMOJI_NEIGHBOUR.test(before) && EMOJI_NEIGHBOUR.test(after)) return m;
        if (
          JOINING_LETTER.test(before) && !LATIN_OR_ASCII.test(before) &&
          (after === '' || (JOINING_LETTER.test(after) && !LATIN_OR_ASCII.test(after)) || after === '\u200C' || after === '\u200D')
        ) return m;
        family = 'zeroWidth';
        rule = 'hidden.zero-width';
        severity = 'low';
      } else {
        if (m === '\u2028' || m === '\u2029') return '\n';
        if (m === '\uFEFF' && offset === 0) return '';
        family = 'zeroWidth';
        rule = 'hidden.zero-width';
        severity = 'low';
      }
      const action = opts[family];
      if (action === 'off') return m;
      bump(tally, rule, severity, [...m].length);
      return action === 'escape' ? escapeCodePoints(m) : '';
    });
  }

  const findings: Finding[] = [];
  for (const [rule, t] of tally) {
    findings.push({
      rule,
      kind: 'hidden',
      severity: t.severity,
      message: `${t.count} ${MESSAGES[rule] ?? rule}`,
      evidence: `${t.count} removed or escaped`,
      count: t.count,
    });
  }
  return { text: out, findings, smuggled: smuggled.trim() };
}
