/** The text report (default): per layer, grade, findings with control, evidence and fix, then passed checks. */
import { LAYERS, type PostureReport, type ScanSeverity } from '../types.js';

const COLOR: Record<ScanSeverity, string> = { critical: '35;1', high: '31;1', medium: '33;1', low: '36', info: '2' };
const GRADE_COLOR: Record<string, string> = { A: '32;1', B: '32', C: '33', D: '31', E: '31;1', F: '35;1' };

/** Strip control characters a hostile server could put in evidence (terminal escapes). */
export function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function renderText(r: PostureReport, color = false): string {
  const paint = (code: string, s: string): string => (color ? `\u001b[${code}m${s}\u001b[0m` : s);
  const lines: string[] = [];
  lines.push(`bastion scan: ${printable(r.target)}`);
  lines.push(`Overall grade: ${paint(GRADE_COLOR[r.grade] ?? '0', r.grade)}`);
  for (const l of LAYERS) {
    const layer = r.layers[l];
    lines.push('', `${l.toUpperCase()}  grade ${paint(GRADE_COLOR[layer.grade] ?? '0', layer.grade)}  (${layer.findings.length} finding${layer.findings.length === 1 ? '' : 's'})`);
    for (const f of layer.findings) {
      lines.push(`  ${paint(COLOR[f.severity], `[${f.severity.toUpperCase()}]`)} ${printable(f.title)}  (${f.id})`);
      lines.push(`      control:  ${f.control}`);
      lines.push(`      evidence: ${printable(f.evidence)}`);
      lines.push(`      fix:      ${printable(f.fix)}`);
    }
    for (const p of layer.passed) lines.push(`  ${paint('32', 'ok')}  ${printable(p)}`);
  }
  return `${lines.join('\n')}\n`;
}
