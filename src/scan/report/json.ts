/** The JSON report: exactly the contract of docs/scan.md (no extra keys). */
import { LAYERS, type PostureReport } from '../types.js';

export function toJson(r: PostureReport): Record<string, unknown> {
  const layers: Record<string, unknown> = {};
  for (const l of LAYERS) {
    layers[l] = {
      grade: r.layers[l].grade,
      findings: r.layers[l].findings.map((f) => ({ id: f.id, severity: f.severity, title: f.title, control: f.control, evidence: f.evidence, fix: f.fix })),
    };
  }
  return { target: r.target, grade: r.grade, layers };
}

export function renderJson(r: PostureReport): string {
  return `${JSON.stringify(toJson(r), null, 2)}\n`;
}
