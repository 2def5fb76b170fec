/**
 * The pin decision: pure. Given the effective pin, the definition's hash, the scan verdict and
 * the manifest coverage, say whether the definition passes or is held back, and why.
 *
 * Order (first that applies):
 * 1. `requireSignedManifest` and no valid trusted manifest covers this hash → unsigned (held).
 * 2. The pin's hash equals the definition's hash → approved (a person approved this exact text,
 *    findings included; a `tofu` pin does not cover findings: step 3 still applies to it).
 * 3. The scan verdict is `block` → blocked-by-scan (held), with the diff when a pin exists.
 * 4. A valid trusted manifest covers the hash → approved; pinned as `manifest:<signer>`.
 * 5. Mode `off` → approved, nothing pinned.
 * 6. No pin: `tofu` → approved and pinned (first sight); `strict` → new (held).
 * 7. A pin with another hash → changed (held), with a readable diff.
 */
import { prettyCanonical } from './canonical.js';
import type { DefinitionKind, Finding, HoldStatus, IntegrityMode, Pin, ScanResult } from './types.js';

export interface DecisionInput {
  kind: DefinitionKind;
  name: string;
  hash: string;
  /** Identity fields as received now. */
  definition: Record<string, unknown>;
  mode: IntegrityMode;
  /** Effective pin: runtime (state store) first, then the lockfile; undefined when revoked or absent. */
  pin: Pin | undefined;
  scan?: ScanResult | undefined;
  manifest?: { required: boolean; covered: boolean; signer?: string | undefined } | undefined;
}

export type IntegrityDecision =
  | { status: 'approved'; via: 'pin' | 'tofu' | 'manifest' | 'off'; findings: Finding[] }
  | { status: HoldStatus; reason: string; diff?: string | undefined; findings: Finding[] };

export function decide(input: DecisionInput): IntegrityDecision {
  const findings = input.scan?.findings ?? [];
  const { pin, hash } = input;
  if (input.manifest?.required && !input.manifest.covered) {
    return { status: 'unsigned', reason: 'no valid signed manifest from a trusted publisher covers this definition', findings };
  }
  // A person's approval covers the findings of that exact text; a first-sight (tofu) pin does
  // not: when the rules (or the other servers' tools) later make the scan block it, it is held.
  const tofuPin = pin?.approvedBy === 'tofu';
  if (pin !== undefined && pin.hash === hash && !(tofuPin && input.scan?.verdict === 'block')) return { status: 'approved', via: 'pin', findings };
  const diff = pin !== undefined && pin.hash !== hash ? diffDefinitions(pin.definition, input.definition) : undefined;
  if (input.scan?.verdict === 'block') {
    const rules = [...new Set(findings.filter((f) => f.severity === 'high' || f.severity === 'critical').map((f) => f.rule))];
    return { status: 'blocked-by-scan', reason: `the poisoning scan flagged it (${rules.join(', ')})`, diff, findings };
  }
  if (input.manifest?.covered) return { status: 'approved', via: 'manifest', findings };
  if (input.mode === 'off') return { status: 'approved', via: 'off', findings };
  if (pin === undefined) {
    if (input.mode === 'tofu') return { status: 'approved', via: 'tofu', findings };
    return { status: 'new', reason: 'not pinned (strict mode approves only pinned definitions)', findings };
  }
  return { status: 'changed', reason: 'differs from the approved (pinned) version', diff, findings };
}

/** How to approve, for error messages and events. */
export function approveHint(server: string, kind: DefinitionKind, name: string): string {
  const k = kind === 'tool' ? '' : ` --kind ${kind}`;
  return `review it with \`bastion pin diff --server ${server}${k} ${name}\` and approve it with \`bastion pin approve --server ${server}${k} ${name}\``;
}

// ---------------------------------------------------------------------------------------------
// Diff

const MAX_DIFF_LINES = 3000;

/** A readable line diff of two definitions' pretty canonical JSON (3 lines of context). */
export function diffDefinitions(before: unknown, after: unknown): string {
  const a = prettyCanonical(before).split('\n');
  const b = prettyCanonical(after).split('\n');
  return diffLines(a, b);
}

export function diffLines(a: readonly string[], b: readonly string[], context = 3): string {
  // Trim the common head and tail, then LCS on what is left.
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const x = a.slice(head, a.length - tail);
  const y = b.slice(head, b.length - tail);
  if (x.length === 0 && y.length === 0) return '';
  const ops: Array<{ op: ' ' | '-' | '+'; line: string }> = [];
  for (let i = 0; i < head; i++) ops.push({ op: ' ', line: a[i]! });
  if (x.length * y.length > MAX_DIFF_LINES * MAX_DIFF_LINES / 4) {
    for (const l of x) ops.push({ op: '-', line: l });
    for (const l of y) ops.push({ op: '+', line: l });
  } else {
    const n = x.length;
    const m = y.length;
    const lcs = new Uint32Array((n + 1) * (m + 1));
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        lcs[i * (m + 1) + j] = x[i] === y[j] ? lcs[(i + 1) * (m + 1) + j + 1]! + 1 : Math.max(lcs[(i + 1) * (m + 1) + j]!, lcs[i * (m + 1) + j + 1]!);
      }
    }
    let i = 0;
    let j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && x[i] === y[j]) {
        ops.push({ op: ' ', line: x[i]! });
        i++;
        j++;
      } else if (j < m && (i === n || lcs[i * (m + 1) + j + 1]! >= lcs[(i + 1) * (m + 1) + j]!)) {
        ops.push({ op: '+', line: y[j]! });
        j++;
      } else {
        ops.push({ op: '-', line: x[i]! });
        i++;
      }
    }
  }
  for (let i = a.length - tail; i < a.length; i++) ops.push({ op: ' ', line: a[i]! });
  // Keep changed lines with `context` lines around them.
  const keep = new Uint8Array(ops.length);
  ops.forEach((o, k) => {
    if (o.op !== ' ') for (let d = -context; d <= context; d++) if (k + d >= 0 && k + d < ops.length) keep[k + d] = 1;
  });
  const out: string[] = [];
  let skipping = false;
  ops.forEach((o, k) => {
    if (keep[k]) {
      out.push(`${o.op} ${o.line}`);
      skipping = false;
    } else if (!skipping) {
      out.push('@@');
      skipping = true;
    }
  });
  return out.join('\n');
}
