/**
 * SARIF 2.1.0: one run of the tool `bastion-scan`; rules are the finding ids (with the control
 * as help), results carry the target URL or command as their location.
 */
import { CONTROLS, controlByName } from '../controls.js';
import { LAYERS, type PostureFinding, type PostureReport, type ScanSeverity } from '../types.js';

const LEVEL: Record<ScanSeverity, 'error' | 'warning' | 'note'> = { critical: 'error', high: 'error', medium: 'warning', low: 'note', info: 'note' };
const SCORE: Record<ScanSeverity, string> = { critical: '9.5', high: '8.0', medium: '5.5', low: '3.0', info: '0.0' };

export function toSarif(r: PostureReport): Record<string, unknown> {
  const all: Array<PostureFinding & { layer: string }> = [];
  for (const l of LAYERS) for (const f of r.layers[l].findings) all.push({ ...f, layer: l });
  const ruleIds = [...new Set(all.map((f) => f.id))];
  const rules = ruleIds.map((id) => {
    const f = all.find((x) => x.id === id)!;
    const c = controlByName(f.control);
    return {
      id,
      name: id.replace(/[^A-Za-z0-9]+(.)?/g, (_m, ch: string | undefined) => (ch ? ch.toUpperCase() : '')),
      shortDescription: { text: f.control },
      fullDescription: { text: c?.description ?? f.control },
      help: { text: f.fix },
      properties: { layer: f.layer, control: f.control, ...(c ? { controlId: c.id } : {}), tags: ['security', 'mcp', f.layer], 'security-severity': SCORE[f.severity] },
    };
  });
  const isUrl = /^https?:\/\//.test(r.target);
  const results = all.map((f) => ({
    ruleId: f.id,
    ruleIndex: ruleIds.indexOf(f.id),
    level: LEVEL[f.severity],
    message: { text: `${f.title}. Evidence: ${f.evidence}. Fix: ${f.fix}` },
    locations: [{ physicalLocation: { artifactLocation: { uri: isUrl ? r.target : 'mcp-server' } }, ...(isUrl ? {} : { logicalLocations: [{ name: r.target, kind: 'module' }] }) }],
    properties: { severity: f.severity, layer: f.layer, control: f.control },
  }));
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: { driver: { name: 'bastion-scan', informationUri: 'https://github.com/mcp-bastion/mcp-bastion', semanticVersion: '0.1.0', rules } },
        results,
        properties: { target: r.target, grade: r.grade, layerGrades: Object.fromEntries(LAYERS.map((l) => [l, r.layers[l].grade])), controls: CONTROLS.length },
      },
    ],
  };
}

export function renderSarif(r: PostureReport): string {
  return `${JSON.stringify(toSarif(r), null, 2)}\n`;
}
