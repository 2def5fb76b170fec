/**
 * `npm run eval:integrity`: measures the poisoning scanner on ../shared/corpora (never copied
 * into the repository).
 *
 * - TPR: attack definitions whose verdict is `block` (and, separately, block-or-warn).
 * - FPR(block): benign real tools whose verdict is `block`.
 * Per corpus and per rule, on a deterministic split: a sample is in the TUNE part when the first
 * byte of SHA-256("split|" + corpus + "|" + sample id) is even, REPORT otherwise. Thresholds and
 * patterns were adjusted looking only at misses/false positives of the TUNE part; the headline
 * figures are the REPORT part.
 *
 * Cross-server context, as the gateway would see it:
 * - MSB: an attack tool is offered by a second server mounted beside the original server (whose
 *   original tools are the known, approved ones). A benign original is scanned with the other
 *   MSB servers' originals as known tools.
 * - benign-tools: each server is scanned with every other server of the same collection as known
 *   tools (a gateway mounting the whole collection); an "all collections together" line is
 *   printed as well.
 * Out of scope (reported, not counted): attacks that live only in tool OUTPUT or in behaviour
 * (no trace in the definition): those are the sanitizer's and the pins' job.
 *
 * Usage: npm run eval:integrity [-- --corpora DIR] [--verbose]
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { indexKnown, scanDefinition, scanTools, RULES } from '../src/integrity/scan.js';
import { definitionHash } from '../src/integrity/canonical.js';
import type { KnownTool, ScanResult } from '../src/integrity/types.js';

type Label = 'attack' | 'benign';
interface Sample {
  corpus: string;
  id: string;
  label: Label;
  server: string;
  tool: Record<string, unknown>;
  known: KnownTool[];
  inScope: boolean;
  note?: string;
}

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const corporaArg = args.indexOf('--corpora');
const CORPORA = corporaArg >= 0 ? resolve(args[corporaArg + 1]!) : resolve(here, '../../shared/corpora');
const VERBOSE = args.includes('--verbose');
const SHOW = args.includes('--show-report-errors');

function readJson(p: string): unknown {
  return JSON.parse(readFileSync(join(CORPORA, p), 'utf8')) as unknown;
}

function split(corpus: string, id: string): 'tune' | 'report' {
  return createHash('sha256').update(`split|${corpus}|${id}`).digest()[0]! % 2 === 0 ? 'tune' : 'report';
}

function asKnown(server: string, tools: Array<Record<string, unknown>>): KnownTool[] {
  return tools.map((t) => ({ server, name: String(t.name), description: typeof t.description === 'string' ? t.description : undefined }));
}

function clean(t: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of ['name', 'title', 'description', 'inputSchema', 'outputSchema', 'annotations']) if (t[k] !== undefined && t[k] !== null) out[k] = t[k];
  return out;
}

const samples: Sample[] = [];
const excluded: Array<{ corpus: string; id: string; why: string }> = [];

// --- MSB ------------------------------------------------------------------------------------
{
  const rows = readJson('tool-poisoning/msb/extracted/msb_tool_definitions.json') as Array<Record<string, unknown>>;
  const originals = new Map<string, Array<Record<string, unknown>>>();
  for (const r of rows) {
    if (r.label !== 'benign') continue;
    const s = String(r.server);
    const l = originals.get(s) ?? [];
    if (!l.some((x) => x.name === r.name && x.description === r.description)) l.push(r);
    originals.set(s, l);
  }
  rows.forEach((r, i) => {
    const server = String(r.server);
    const id = `${server}/${String(r.msb_variant)}/${String(r.name)}#${i}`;
    if (r.label === 'attack') {
      samples.push({ corpus: 'msb', id, label: 'attack', server: `${server}-mal`, tool: clean(r), known: asKnown(server, originals.get(server) ?? []), inScope: true, note: String(r.msb_variant) });
    } else {
      const known: KnownTool[] = [];
      for (const [s, l] of originals) if (s !== server) known.push(...asKnown(s, l));
      samples.push({ corpus: 'msb', id, label: 'benign', server, tool: clean(r), known, inScope: true });
    }
  });
  const mats = readFileSync(join(CORPORA, 'tool-poisoning/msb/extracted/msb_materialized_samples.jsonl'), 'utf8').split('\n').filter(Boolean);
  mats.forEach((line, i) => {
    const r = JSON.parse(line) as Record<string, unknown>;
    const id = `${String(r.attack_type)}/${String(r.attack_task)}#${i}`;
    if (r.surface !== 'tool_description') {
      excluded.push({ corpus: 'msb-payloads', id, why: 'tool output payload (sanitizer scope)' });
      return;
    }
    samples.push({ corpus: 'msb-payloads', id, label: 'attack', server: 'mal', tool: { name: 'read_text_file', description: `Read a text file from disk.${String(r.text)}` }, known: [], inScope: true });
  });
}

// --- Fixtures (mcp-scan, Trail of Bits, MCPSecBench) -----------------------------------------
{
  const rows = readJson('tool-poisoning/mcp_attack_fixtures.json') as Array<Record<string, unknown>>;
  const legit = rows.filter((r) => r.label === 'benign' && String(r.category).startsWith('legit server'));
  rows.forEach((r, i) => {
    const id = `${String(r.fixture_set)}/${String(r.name)}#${i}`;
    if (r.surface === 'tool_output') {
      excluded.push({ corpus: 'fixtures', id, why: 'tool output (sanitizer scope)' });
      return;
    }
    const cat = String(r.category);
    const tool = clean(r);
    if (r.label === 'attack') {
      const nameAttack = /squatting/i.test(cat);
      const schemaAttack = /extra parameter/i.test(cat);
      if (r.description_carries_attack === false && !nameAttack && !schemaAttack) {
        excluded.push({ corpus: 'fixtures', id, why: `attack not in the definition: ${cat.slice(0, 60)}` });
        return;
      }
      const known = String(r.fixture_set).startsWith('mcpsecbench') ? asKnown('legit', legit) : [];
      samples.push({ corpus: 'fixtures', id, label: 'attack', server: 'mal', tool, known, inScope: true, note: cat.slice(0, 40) });
    } else {
      samples.push({ corpus: 'fixtures', id, label: 'benign', server: 'fixture', tool, known: [], inScope: true });
    }
  });
  for (const f of readdirSync(join(CORPORA, 'tool-poisoning/mcp-scan-benign-signatures'))) {
    const d = readJson(`tool-poisoning/mcp-scan-benign-signatures/${f}`) as { tools?: Array<Record<string, unknown>> };
    for (const t of d.tools ?? []) samples.push({ corpus: 'fixtures', id: `${f}/${String(t.name)}`, label: 'benign', server: f, tool: clean(t), known: [], inScope: true });
  }
}

// --- Benign real tools ------------------------------------------------------------------------
interface ServerFile {
  family: string;
  base: string;
  file: string;
  tools: Array<Record<string, unknown>>;
}
const servers: ServerFile[] = [];
{
  const dir = 'benign-tools';
  for (const f of readdirSync(join(CORPORA, dir)).filter((x) => x.endsWith('.json'))) {
    const d = readJson(`${dir}/${f}`) as { tools: Array<Record<string, unknown>> };
    servers.push({ family: 'reference', base: f.replace(/^modelcontextprotocol-servers__/, '').replace(/(@[^.]*)?\.json$/, ''), file: f, tools: d.tools.map(clean) });
  }
  for (const f of readdirSync(join(CORPORA, dir, 'docker-mcp-registry')).filter((x) => x.endsWith('.json'))) {
    const d = readJson(`${dir}/docker-mcp-registry/${f}`) as { tools: Array<Record<string, unknown>> };
    servers.push({ family: 'docker', base: f.replace(/\.json$/, ''), file: f, tools: d.tools.map(clean) });
  }
  for (const s of servers) {
    const known: KnownTool[] = [];
    for (const o of servers) if (o.family === s.family && o.base !== s.base) known.push(...asKnown(o.base, o.tools));
    for (const t of s.tools) {
      samples.push({ corpus: `benign-${s.family}`, id: `${s.file}/${String(t.name)}`, label: 'benign', server: s.base, tool: t, known, inScope: true });
    }
  }
  const pairs = readFileSync(join(CORPORA, 'benign-changes/modelcontextprotocol-servers_version_pairs.jsonl'), 'utf8').split('\n').filter(Boolean);
  pairs.forEach((line, i) => {
    const r = JSON.parse(line) as { server: string; tool: string; before: Record<string, unknown>; after: Record<string, unknown> };
    samples.push({ corpus: 'benign-changes', id: `${r.server}/${r.tool}#${i}/before`, label: 'benign', server: r.server, tool: r.before, known: [], inScope: true });
    samples.push({ corpus: 'benign-changes', id: `${r.server}/${r.tool}#${i}/after`, label: 'benign', server: r.server, tool: r.after, known: [], inScope: true });
  });
}

const siblingsOf = new Map<string, Set<string>>();
for (const s of samples) {
  const l = siblingsOf.get(s.server) ?? new Set<string>();
  l.add(String(s.tool.name));
  siblingsOf.set(s.server, l);
}

// --- Run ----------------------------------------------------------------------------------------
const t0 = performance.now();
const results: Array<{ s: Sample; r: ScanResult; part: 'tune' | 'report' }> = [];
const idxCache = new Map<KnownTool[], ReturnType<typeof indexKnown>>();
for (const s of samples) {
  let idx = idxCache.get(s.known);
  if (idx === undefined && s.known.length > 0) {
    idx = indexKnown(s.known);
    idxCache.set(s.known, idx);
  }
  const r = scanDefinition('tool', s.tool, { server: s.server, policy: 'block', siblings: siblingsOf.get(s.server) }, idx);
  results.push({ s, r, part: split(s.corpus, s.id) });
}
const elapsed = performance.now() - t0;

function pct(n: number, d: number): string {
  return d === 0 ? '   -  ' : `${((100 * n) / d).toFixed(1).padStart(5)}%`;
}

type Part = 'tune' | 'report' | 'all';
function stats(filter: (x: (typeof results)[number]) => boolean, part: Part) {
  const rows = results.filter((x) => filter(x) && (part === 'all' || x.part === part));
  const att = rows.filter((x) => x.s.label === 'attack');
  const ben = rows.filter((x) => x.s.label === 'benign');
  return {
    att: att.length,
    caught: att.filter((x) => x.r.verdict === 'block').length,
    flagged: att.filter((x) => x.r.verdict !== 'pass').length,
    ben: ben.length,
    fpBlock: ben.filter((x) => x.r.verdict === 'block').length,
    fpWarn: ben.filter((x) => x.r.verdict === 'warn').length,
  };
}

const corpora = [...new Set(samples.map((s) => s.corpus))];
const lines: string[] = [];
const hdr = `${'corpus'.padEnd(16)} ${'part'.padEnd(7)} ${'attacks'.padStart(7)} ${'TPR(block)'.padStart(10)} ${'TPR(flag)'.padStart(9)} ${'benign'.padStart(7)} ${'FPR(block)'.padStart(10)} ${'warn'.padStart(7)}`;
lines.push(hdr, '-'.repeat(hdr.length));
for (const c of [...corpora, 'ALL']) {
  for (const part of ['tune', 'report', 'all'] as Part[]) {
    const st = stats((x) => c === 'ALL' || x.s.corpus === c, part);
    lines.push(
      `${c.padEnd(16)} ${part.padEnd(7)} ${String(st.att).padStart(7)} ${pct(st.caught, st.att).padStart(10)} ${pct(st.flagged, st.att).padStart(9)} ${String(st.ben).padStart(7)} ${pct(st.fpBlock, st.ben).padStart(10)} ${pct(st.fpWarn, st.ben).padStart(7)}`,
    );
  }
}
console.log(`\nPoisoning scanner on ${CORPORA}`);
console.log(`${samples.length} definitions scanned in ${elapsed.toFixed(0)} ms (${((1000 * samples.length) / elapsed).toFixed(0)}/s)\n`);
console.log(lines.join('\n'));

// Per rule and corpus, REPORT part: on how many samples the rule has a finding (any severity).
{
  const rep = results.filter((x) => x.part === 'report');
  const cols = corpora.map((c) => ({ c, att: rep.filter((x) => x.s.corpus === c && x.s.label === 'attack'), ben: rep.filter((x) => x.s.corpus === c && x.s.label === 'benign') }));
  console.log('\nPer rule × corpus (REPORT part): attacks hit / attacks, benign hit / benign');
  const head = `${'rule'.padEnd(26)} ${'sev'.padEnd(8)} ${cols.map((c) => c.c.padStart(17)).join(' ')}`;
  console.log(head);
  console.log('-'.repeat(head.length));
  for (const id of Object.keys(RULES)) {
    const cells = cols.map(({ att, ben }) => {
      const a = att.filter((x) => x.r.findings.some((f) => f.rule === id)).length;
      const b = ben.filter((x) => x.r.findings.some((f) => f.rule === id)).length;
      const parts: string[] = [];
      if (att.length > 0) parts.push(`${a}/${att.length}a`);
      if (ben.length > 0) parts.push(`${b}/${ben.length}b`);
      return parts.join(' ').padStart(17);
    });
    console.log(`${id.padEnd(26)} ${RULES[id]!.severity.padEnd(8)} ${cells.join(' ')}`);
  }
}

// Without any cross-server context, text rules alone (the MSB name-only attacks cannot be seen).
{
  const msbAtt = results.filter((x) => x.s.corpus === 'msb' && x.s.label === 'attack' && x.part === 'report');
  const textOnly = msbAtt.filter((x) => scanDefinition('tool', x.s.tool, { server: x.s.server }).verdict === 'block').length;
  console.log(`\nMSB attacks (REPORT part) caught by text rules alone, no other server known: ${textOnly}/${msbAtt.length} (${pct(textOnly, msbAtt.length).trim()}); the rest need the cross-server name checks.`);
}

// Benign collections all mounted together (harsher cross-server context).
{
  const all: KnownTool[] = [];
  for (const o of servers) all.push(...asKnown(`${o.family}:${o.base}`, o.tools));
  const idx = indexKnown(all);
  let n = 0;
  let blocked = 0;
  const why = new Map<string, number>();
  for (const s of servers) {
    for (const t of s.tools) {
      n++;
      const r = scanDefinition('tool', t, { server: `${s.family}:${s.base}`, policy: 'block', siblings: new Set(s.tools.map((x) => String(x.name))) }, idx);
      if (r.verdict === 'block') {
        blocked++;
        for (const f of r.findings) if (f.severity === 'high' || f.severity === 'critical') why.set(f.rule, (why.get(f.rule) ?? 0) + 1);
      }
    }
  }
  // Versions of the same server (filesystem and filesystem@2025-05-29) are not independent servers.
  console.log(`\nAll benign collections mounted together (${n} tools; harsher, includes two GitHub and two Sentry servers): FPR(block) ${pct(blocked, n)} ${JSON.stringify(Object.fromEntries(why))}`);
}

// Throughput of one scanTools call (what `bastion scan tools` does): all benign tools, all of
// them known as another server's tools (the worst case for the cross-server checks).
{
  const tools = servers.flatMap((s) => s.tools);
  const known = servers.flatMap((s) => asKnown(`other:${s.base}`, s.tools));
  scanTools(tools, { known, server: 'x' }); // warm-up
  const t = performance.now();
  scanTools(tools, { known, server: 'x' });
  const ms = performance.now() - t;
  const t2 = performance.now();
  scanTools(tools, { server: 'x' });
  const ms2 = performance.now() - t2;
  console.log(`Throughput (one call, warm): ${tools.length} tools against ${known.length} known tools in ${ms.toFixed(0)} ms (${((1000 * tools.length) / ms).toFixed(0)} tools/s); text rules only ${ms2.toFixed(0)} ms (${((1000 * tools.length) / ms2).toFixed(0)} tools/s).`);
}

// Pins notice every legitimate change of the benign-changes corpus.
{
  const pairs = readFileSync(join(CORPORA, 'benign-changes/modelcontextprotocol-servers_version_pairs.jsonl'), 'utf8').split('\n').filter(Boolean);
  let changed = 0;
  for (const line of pairs) {
    const r = JSON.parse(line) as { before: Record<string, unknown>; after: Record<string, unknown> };
    if (definitionHash('tool', r.before) !== definitionHash('tool', r.after)) changed++;
  }
  console.log(`Pins: ${changed}/${pairs.length} legitimate upstream changes (benign-changes) are detected as changes.`);
}

console.log(`\nOut of scope (not counted): ${excluded.length} samples`);
const ex = new Map<string, number>();
for (const e of excluded) ex.set(`${e.corpus}: ${e.why}`, (ex.get(`${e.corpus}: ${e.why}`) ?? 0) + 1);
for (const [k, v] of ex) console.log(`  ${v} × ${k}`);

if (VERBOSE || SHOW) {
  const part = SHOW ? 'report' : 'tune';
  console.log(`\nErrors on the ${part.toUpperCase()} part:`);
  for (const x of results) {
    if (x.part !== part) continue;
    if (x.s.label === 'attack' && x.r.verdict !== 'block') {
      console.log(`  MISS ${x.s.corpus} ${x.s.id} [${x.s.note ?? ''}] verdict=${x.r.verdict} ${x.r.findings.map((f) => f.rule).join(',')}`);
    }
    if (x.s.label === 'benign' && x.r.verdict !== 'pass') {
      console.log(`  FP   ${x.s.corpus} ${x.s.id} verdict=${x.r.verdict} ${x.r.findings.map((f) => `${f.rule}(${f.severity}): ${f.evidence}`).join(' | ')}`);
    }
  }
}
if (!existsSync(CORPORA)) process.exitCode = 1;
