/**
 * Grades: per layer from its findings, overall the worst layer.
 * A: nothing above info. B: low at most. C: medium at most. D: one high. E: two or more highs.
 * F: any critical.
 */
import type { Grade, LayerName, LayerReport, LayerResult, PostureFinding, PostureReport } from './types.js';
import { LAYERS, SEVERITY_RANK } from './types.js';

const ORDER: readonly Grade[] = ['A', 'B', 'C', 'D', 'E', 'F'];

export function gradeFindings(findings: readonly PostureFinding[]): Grade {
  let highs = 0;
  let worst = 0;
  for (const f of findings) {
    worst = Math.max(worst, SEVERITY_RANK[f.severity]);
    if (f.severity === 'high') highs++;
  }
  if (worst === 4) return 'F';
  if (highs >= 2) return 'E';
  if (highs === 1) return 'D';
  if (worst === 2) return 'C';
  if (worst === 1) return 'B';
  return 'A';
}

export function worstGrade(grades: readonly Grade[]): Grade {
  return grades.reduce<Grade>((w, g) => (ORDER.indexOf(g) > ORDER.indexOf(w) ? g : w), 'A');
}

function sortFindings(fs: PostureFinding[]): PostureFinding[] {
  return [...fs].sort((a, b) => SEVERITY_RANK[b.severity] - SEVERITY_RANK[a.severity] || a.id.localeCompare(b.id));
}

export function buildReport(target: string, results: Record<LayerName, LayerResult>): PostureReport {
  const layers = {} as Record<LayerName, LayerReport>;
  for (const l of LAYERS) {
    const r = results[l];
    layers[l] = { grade: gradeFindings(r.findings), findings: sortFindings(r.findings), passed: r.passed };
  }
  return { target, grade: worstGrade(LAYERS.map((l) => layers[l].grade)), layers };
}

/** True when a finding is at or above `min`. */
export function atOrAbove(f: PostureFinding, min: PostureFinding['severity']): boolean {
  return SEVERITY_RANK[f.severity] >= SEVERITY_RANK[min];
}
