/**
 * Offline scan of a text: a verdict, printable findings and the sanitized text. Used by
 * `bastion scan text` and the eval. Evidence is safe to print: secrets are masked, hidden and
 * control characters escaped, snippets shortened.
 */
import { sanitizeText } from './text.js';
import { DEFAULT_POLICY, SEVERITY_RANK, type Finding, type SanitizePolicy, type Severity } from './types.js';

export type Verdict = 'block' | 'warn' | 'pass';

export interface PrintableFinding {
  rule: string;
  severity: Severity;
  message: string;
  evidence: string;
}

export interface ScanReport {
  verdict: Verdict;
  findings: PrintableFinding[];
  sanitized: string;
}

const MAX_EVIDENCE = 160;

// eslint-disable-next-line no-control-regex, no-misleading-character-class
const UNPRINTABLE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2069\u3164\uFE00-\uFE0F\uFEFF\uFFA0]|[\u{E0000}-\u{E007F}\u{E0100}-\u{E01EF}]/gu;

export function printableEvidence(s: string): string {
  let e = s.replace(/\s+/g, ' ').trim();
  e = e.replace(UNPRINTABLE, (c) => `\\u{${c.codePointAt(0)!.toString(16).toUpperCase()}}`);
  return e.length > MAX_EVIDENCE ? `${e.slice(0, MAX_EVIDENCE - 1)}…` : e;
}

/** Verdict from findings: any high-severity finding blocks, medium warns, low passes. */
export function verdictOf(findings: readonly Finding[], minSeverity: Severity = 'medium'): Verdict {
  let top = 0;
  for (const f of findings) top = Math.max(top, SEVERITY_RANK[f.severity]);
  if (top >= SEVERITY_RANK.high) return 'block';
  if (top >= SEVERITY_RANK[minSeverity]) return 'warn';
  return 'pass';
}

export function scanText(text: string, policy: SanitizePolicy = DEFAULT_POLICY): ScanReport {
  const r = sanitizeText(text, policy);
  return {
    verdict: r.block ? 'block' : verdictOf(r.findings, policy.injectionMinSeverity),
    findings: r.findings.map((f) => ({ rule: f.rule, severity: f.severity, message: f.message, evidence: printableEvidence(f.evidence) })),
    sanitized: r.text,
  };
}
