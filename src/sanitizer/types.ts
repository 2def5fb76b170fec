/**
 * Shapes shared by the output sanitizer (pure functions in this folder) and the stage that wires
 * it into the response path. A finding never carries a secret: `evidence` is masked by the code
 * that makes it, and only rule ids, severities and counts go to audit records.
 */

export type Severity = 'low' | 'medium' | 'high';

export const SEVERITY_RANK: Readonly<Record<Severity, number>> = { low: 1, medium: 2, high: 3 };

/** What kind of problem a finding is about. */
export type FindingKind = 'injection' | 'secret' | 'hidden' | 'limit' | 'schema';

export interface Finding {
  /** Stable rule id, e.g. `injection.ignore-previous`, `secret.aws-access-key`, `hidden.ansi`. */
  rule: string;
  kind: FindingKind;
  severity: Severity;
  /** What was found, for a person (no secret material). */
  message: string;
  /** Masked or shortened evidence, safe to print (never a secret in clear). */
  evidence: string;
  /** Span in the text the finding refers to (after hidden-character stripping), when it has one. */
  start?: number;
  end?: number;
  /** Number of occurrences folded into this finding (hidden characters are counted, not listed). */
  count?: number;
}

/** What to do with text that carries a prompt-injection finding. */
export type InjectionAction = 'annotate' | 'redact' | 'block' | 'off';
/** What to do with a secret found in output. */
export type SecretAction = 'redact' | 'block' | 'off';
/** What to do with hidden characters: remove them, show them as visible escapes, or leave them. */
export type HiddenAction = 'strip' | 'escape' | 'off';

/** The effective policy for one message (global settings, then server, then tool overrides). */
export interface SanitizePolicy {
  injection: InjectionAction;
  /** Injection findings below this severity are reported but not acted on. */
  injectionMinSeverity: Severity;
  secrets: SecretAction;
  /** ANSI/VT escape sequences and C0/C1 control characters (not tab, newline, carriage return). */
  ansi: HiddenAction;
  /** Unicode tag characters, bidi controls, variation-selector runs (data smuggling). */
  invisible: HiddenAction;
  /** Zero-width characters (ZWSP, ZWJ/ZWNJ outside emoji and scripts that need them, word joiner, BOM). */
  zeroWidth: HiddenAction;
  /** Largest result in bytes (UTF-8 of the JSON) passed to the client. */
  maxOutputBytes: number;
  /** Over the cap: cut text content with a marker, or withhold the result. */
  oversize: 'truncate' | 'block';
  /** `structuredContent` against the tool's `outputSchema`. */
  outputSchema: 'enforce' | 'warn' | 'off';
}

export const DEFAULT_POLICY: Readonly<SanitizePolicy> = Object.freeze({
  injection: 'annotate',
  injectionMinSeverity: 'medium',
  secrets: 'redact',
  ansi: 'strip',
  invisible: 'strip',
  zeroWidth: 'strip',
  maxOutputBytes: 1024 * 1024,
  oversize: 'truncate',
  outputSchema: 'enforce',
});

/** Result of sanitizing one string. */
export interface TextResult {
  text: string;
  findings: Finding[];
  /** True when the policy says the whole message must be withheld. */
  block: boolean;
  changed: boolean;
}
