/**
 * The HTML report: one self-contained page (inline CSS, no script, no external resource) a
 * person reads. Every string from the server is HTML-escaped.
 */
import { CONTROLS } from '../controls.js';
import { LAYERS, type PostureReport, type ScanSeverity } from '../types.js';

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const SEV_COLOR: Record<ScanSeverity, string> = { critical: '#7b1fa2', high: '#c62828', medium: '#ef6c00', low: '#0277bd', info: '#607d8b' };
const GRADE_COLOR: Record<string, string> = { A: '#2e7d32', B: '#558b2f', C: '#f9a825', D: '#ef6c00', E: '#c62828', F: '#7b1fa2' };

export function renderHtml(r: PostureReport, generatedAt = new Date()): string {
  const e = escapeHtml;
  const counts: Record<ScanSeverity, number> = { critical: 0, high: 0, medium: 0, low: 0, info: 0 };
  for (const l of LAYERS) for (const f of r.layers[l].findings) counts[f.severity]++;
  const layerCards = LAYERS.map(
    (l) => `<a class="card" href="#layer-${l}" data-layer="${l}"><span class="grade" style="background:${GRADE_COLOR[r.layers[l].grade]}">${r.layers[l].grade}</span><span class="lname">${l}</span><span class="count">${r.layers[l].findings.length} finding(s)</span></a>`,
  ).join('');
  const sections = LAYERS.map((l) => {
    const layer = r.layers[l];
    const findings = layer.findings
      .map(
        (f) => `<article class="finding" data-severity="${f.severity}" id="${e(l)}-${e(f.id)}" style="border-left-color:${SEV_COLOR[f.severity]}">
  <header><span class="sev" style="background:${SEV_COLOR[f.severity]}">${f.severity}</span> <h3>${e(f.title)}</h3></header>
  <dl><dt>Id</dt><dd><code>${e(f.id)}</code></dd><dt>Control</dt><dd>${e(f.control)}</dd><dt>Evidence</dt><dd><code class="evidence">${e(f.evidence)}</code></dd><dt>Fix</dt><dd>${e(f.fix)}</dd></dl>
</article>`,
      )
      .join('\n');
    const passed = layer.passed.length > 0 ? `<ul class="passed">${layer.passed.map((p) => `<li>✓ ${e(p)}</li>`).join('')}</ul>` : '';
    return `<section class="layer" id="layer-${l}"><h2><span class="grade" style="background:${GRADE_COLOR[layer.grade]}">${layer.grade}</span> ${l}</h2>${findings || '<p class="none">No findings.</p>'}${passed}</section>`;
  }).join('\n');
  const controls = CONTROLS.map((c) => `<tr><td>${e(c.id)}</td><td>${e(c.layer)}</td><td>${e(c.name)}</td><td>${e(c.description)}</td></tr>`).join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>bastion scan: ${e(r.target)} — grade ${r.grade}</title>
<style>
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
main{max-width:1000px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px} .target{font-family:ui-monospace,monospace;word-break:break-all;color:#37474f}
.overall{display:flex;align-items:center;gap:18px;background:#fff;border-radius:10px;padding:18px;box-shadow:0 1px 3px #0002;margin:16px 0}
.overall .grade{font-size:44px;width:72px;height:72px}
.grade{display:inline-flex;align-items:center;justify-content:center;color:#fff;font-weight:700;border-radius:8px;width:32px;height:32px}
.cards{display:grid;grid-template-columns:repeat(4,1fr);gap:12px;margin-bottom:20px}
.card{background:#fff;border-radius:10px;padding:12px;display:flex;flex-direction:column;align-items:center;gap:6px;text-decoration:none;color:inherit;box-shadow:0 1px 3px #0002}
.lname{text-transform:capitalize;font-weight:600} .count{color:#607d8b;font-size:13px}
.layer{background:#fff;border-radius:10px;padding:16px 18px;margin-bottom:16px;box-shadow:0 1px 3px #0002}
.layer h2{text-transform:capitalize;display:flex;gap:10px;align-items:center;margin:0 0 10px;font-size:19px}
.finding{border-left:4px solid #cfd8dc;padding:6px 12px;margin:10px 0;background:#fafbfc}
.finding header{display:flex;align-items:baseline;gap:8px} .finding h3{font-size:15px;margin:4px 0}
.sev{color:#fff;border-radius:4px;padding:1px 7px;font-size:12px;text-transform:uppercase;font-weight:600}
dl{display:grid;grid-template-columns:80px 1fr;gap:2px 10px;margin:6px 0} dt{color:#607d8b} dd{margin:0}
code{font-family:ui-monospace,monospace;font-size:13px;word-break:break-all;white-space:pre-wrap}
.passed{list-style:none;padding:0;color:#2e7d32;margin:8px 0 0} .none{color:#607d8b}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px} td{border-top:1px solid #eceff1;padding:4px 6px;vertical-align:top}
footer{color:#78909c;font-size:12px;margin-top:20px}
</style></head>
<body><main>
<h1>MCP server security posture</h1>
<div class="target" id="target">${e(r.target)}</div>
<div class="overall" id="overall"><span class="grade" style="background:${GRADE_COLOR[r.grade]}">${r.grade}</span><div><strong>Overall grade ${r.grade}</strong><br>${(['critical', 'high', 'medium', 'low', 'info'] as const).map((s) => `${counts[s]} ${s}`).join(' · ')}</div></div>
<nav class="cards">${layerCards}</nav>
${sections}
<details><summary>Hardening controls checked (${CONTROLS.length})</summary><table>${controls}</table></details>
<footer>Generated by bastion scan at ${e(generatedAt.toISOString())}. Grades: A no finding above info; B low; C medium; D one high; E several high; F critical.</footer>
</main></body></html>
`;
}
