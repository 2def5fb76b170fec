/**
 * `npm run eval:sanitize`: detection and false-positive rates of the output sanitizer on the
 * labelled corpora in ../shared/corpora (never copied into the repository).
 *
 * Splits (fixed, stated in the output):
 * - AgentDojo tool outputs: TUNE = suites banking + slack; REPORT = suites travel + workspace
 *   (held-out goals, carriers and benign records). Injected records carry one of six attack
 *   templates; benign records are the 148 + 41 benign records (deduplicated).
 * - MCP tool-output attacks (MSB materialized samples with surface tool_output, mcp-scan /
 *   context-protector fixtures with surface tool_output): REPORT only. Two rules
 *   (injection.tool-coercion "use X tool", injection.fake-user-turn) and two phrases of
 *   task-hijack-weak were added after reading misses in this set: it is not held out.
 * - Benign tool descriptions (benign-tools/: reference servers and Docker's MCP catalog): REPORT
 *   only, false positives only (descriptions are addressed to a model by design).
 * - gitleaks rule test strings: split by rule id (FNV-1a hash parity): even = TUNE, odd = REPORT.
 *   Strings labelled not_secret whose exact text is labelled secret under another rule are
 *   dropped from the look-alikes (contradictory labels). Two detectors were added after reading
 *   the two REPORT misses (17/19 before them): `gcp-service-account` (a service-account key file,
 *   after gcp-service-account's `"type": "service_account"`) and `vendor-token` (a key naming a
 *   vendor assigned a token-shaped value, after sourcegraph-access-token's `sourcegraph: <40
 *   hex>`). The gitleaks look-alikes of both splits were also read while writing their exclusions
 *   (e.g. `discord=000…`, `meraki: aaaa…`, `sha256:` digests). So REPORT is not held out for these
 *   two rules: its recall counts the very strings they were written for.
 * - detect-secrets test data: REPORT only. Labels come from its own baseline.file: a value whose
 *   SHA-1 equals a `hashed_secret` listed for that file is a secret; lines holding none are
 *   look-alikes (the baseline is from 2020 and was made with low test thresholds, e.g. hex
 *   entropy limit 3, so it counts strings like `23456789a1` as secrets).
 *
 * "Caught" / "flagged" = at least one injection or hidden-instruction finding at or above the
 * default action threshold (medium). "Redacted" / "touched" = at least one secret placeholder.
 *
 * Usage: npm run eval:sanitize [-- --split tune|report|all] [--corpora DIR]
 */
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { processHidden } from '../src/sanitizer/hidden.js';
import { detectInjection } from '../src/sanitizer/injection.js';
import { findSecrets } from '../src/sanitizer/secrets.js';
import { DEFAULT_POLICY, SEVERITY_RANK, type Finding } from '../src/sanitizer/types.js';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const argOf = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const corpora = resolve(argOf('--corpora') ?? process.env.BASTION_CORPORA ?? join(here, '..', '..', 'shared', 'corpora'));
const only = argOf('--split') ?? 'all';
const verbose = args.includes('--verbose');

if (!existsSync(corpora)) {
  console.error(`eval:sanitize: corpora not found at ${corpora}. Pass --corpora DIR or set BASTION_CORPORA.`);
  process.exit(2);
}

function readJsonl(p: string): Record<string, unknown>[] {
  return readFileSync(p, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

const minRank = SEVERITY_RANK[DEFAULT_POLICY.injectionMinSeverity];

/** Injection findings that the default policy acts on (hidden smuggling included). */
function injectionFindings(text: string): Finding[] {
  const hidden = processHidden(text, DEFAULT_POLICY);
  const out = detectInjection(hidden.text).filter((f) => SEVERITY_RANK[f.severity] >= minRank);
  if (hidden.smuggled !== '' && detectInjection(hidden.smuggled).some((f) => SEVERITY_RANK[f.severity] >= minRank)) {
    out.push({ rule: 'hidden.smuggled-instructions', kind: 'injection', severity: 'high', message: '', evidence: '' });
  }
  for (const f of hidden.findings) if (f.rule === 'hidden.unicode-tags' || f.rule === 'hidden.bidi' || f.rule === 'hidden.ansi') {
    if (SEVERITY_RANK[f.severity] >= minRank) out.push(f);
  }
  return out;
}

const pct = (n: number, d: number): string => (d === 0 ? '   n/a' : `${((100 * n) / d).toFixed(1).padStart(5)}%`);

function table(title: string, header: string[], rows: (string | number)[][]): void {
  console.log(`\n${title}`);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells: (string | number)[]): string => '| ' + cells.map((c, i) => String(c).padEnd(widths[i]!)).join(' | ') + ' |';
  console.log(line(header));
  console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|');
  for (const r of rows) console.log(line(r));
}

// ------------------------------------------------------------------------------ injections

interface Sample {
  text: string;
  positive: boolean;
  split: 'tune' | 'report';
  group: string;
  corpus: string;
}

const samples: Sample[] = [];
const ad = join(corpora, 'tool-outputs/agentdojo/extracted');
const adSplit = (suite: string): 'tune' | 'report' => (suite === 'banking' || suite === 'slack' ? 'tune' : 'report');
for (const r of readJsonl(join(ad, 'materialized_injected_records.jsonl'))) {
  samples.push({ text: String(r.text), positive: true, split: adSplit(String(r.suite)), group: String(r.attack), corpus: 'agentdojo' });
}
const seenBenign = new Set<string>();
for (const f of ['materialized_benign_all_records.jsonl', 'materialized_benign_records.jsonl']) {
  for (const r of readJsonl(join(ad, f))) {
    const text = String(r.text);
    if (seenBenign.has(text)) continue;
    seenBenign.add(text);
    samples.push({ text, positive: false, split: adSplit(String(r.suite)), group: 'benign', corpus: 'agentdojo' });
  }
}
const msbPath = join(corpora, 'tool-poisoning/msb/extracted/msb_materialized_samples.jsonl');
if (existsSync(msbPath)) {
  for (const r of readJsonl(msbPath)) {
    if (r.surface !== 'tool_output') continue;
    samples.push({ text: String(r.text), positive: r.label === 'attack', split: 'report', group: `msb:${String(r.attack_type)}`, corpus: 'mcp-tool-outputs' });
  }
}
const fixturesPath = join(corpora, 'tool-poisoning/mcp_attack_fixtures.json');
if (existsSync(fixturesPath)) {
  for (const r of JSON.parse(readFileSync(fixturesPath, 'utf8')) as Record<string, unknown>[]) {
    if (r.surface !== 'tool_output') continue;
    samples.push({ text: String(r.output_text), positive: r.label === 'attack', split: 'report', group: `fixture:${String(r.category).slice(0, 40)}`, corpus: 'mcp-tool-outputs' });
  }
}

// Benign tool descriptions (texts addressed to a model by design: "IMPORTANT", "You MUST",
// "before calling…"): a harder false-positive set than tool outputs. REPORT only.
const btDir = join(corpora, 'benign-tools');
if (existsSync(btDir)) {
  const files = [
    ...readdirSync(btDir).filter((f) => f.endsWith('.json')).map((f) => join(btDir, f)),
    ...(existsSync(join(btDir, 'docker-mcp-registry')) ? readdirSync(join(btDir, 'docker-mcp-registry')).filter((f) => f.endsWith('.json')).map((f) => join(btDir, 'docker-mcp-registry', f)) : []),
  ];
  for (const f of files) {
    const doc = JSON.parse(readFileSync(f, 'utf8')) as { tools?: Array<{ description?: unknown }> };
    for (const t of doc.tools ?? []) {
      if (typeof t.description !== 'string' || t.description === '') continue;
      samples.push({ text: t.description, positive: false, split: 'report', group: 'benign tool description', corpus: 'benign-tool-descriptions' });
    }
  }
}

const injSplits = only === 'all' ? (['tune', 'report'] as const) : ([only] as const);
for (const split of injSplits) {
  const set = samples.filter((s) => s.split === split);
  const byCorpus = new Map<string, { pos: number; caught: number; neg: number; flagged: number }>();
  const byGroup = new Map<string, { n: number; hit: number }>();
  const byRule = new Map<string, { pos: number; neg: number }>();
  const misses: string[] = [];
  const fps: string[] = [];
  for (const s of set) {
    const f = injectionFindings(s.text);
    const hit = f.length > 0;
    const c = byCorpus.get(s.corpus) ?? { pos: 0, caught: 0, neg: 0, flagged: 0 };
    if (s.positive) {
      c.pos++;
      if (hit) c.caught++;
      else misses.push(s.text);
    } else {
      c.neg++;
      if (hit) {
        c.flagged++;
        fps.push(`${f.map((x) => x.rule).join(',')} :: ${s.text}`);
      }
    }
    byCorpus.set(s.corpus, c);
    const g = byGroup.get(s.group) ?? { n: 0, hit: 0 };
    g.n++;
    if (hit) g.hit++;
    byGroup.set(s.group, g);
    for (const rule of new Set(f.map((x) => x.rule))) {
      const r = byRule.get(rule) ?? { pos: 0, neg: 0 };
      if (s.positive) r.pos++;
      else r.neg++;
      byRule.set(rule, r);
    }
  }
  table(
    `INJECTION — split ${split.toUpperCase()}${split === 'tune' ? ' (agentdojo banking+slack)' : ' (agentdojo travel+workspace; MCP tool-output attacks)'}`,
    ['corpus', 'injected', 'caught', 'detection', 'benign', 'flagged', 'false-positive'],
    [...byCorpus].map(([k, v]) => [k, v.pos, v.caught, pct(v.caught, v.pos), v.neg, v.flagged, pct(v.flagged, v.neg)]),
  );
  table(`  per attack / group (${split})`, ['group', 'n', 'flagged', 'rate'], [...byGroup].sort().map(([k, v]) => [k, v.n, v.hit, pct(v.hit, v.n)]));
  const posTotal = set.filter((s) => s.positive).length;
  const negTotal = set.length - posTotal;
  table(
    `  per rule (${split}): records on which the rule fired`,
    ['rule', 'injected', 'of injected', 'benign', 'of benign'],
    [...byRule].sort().map(([k, v]) => [k, v.pos, pct(v.pos, posTotal), v.neg, pct(v.neg, negTotal)]),
  );
  if (verbose) {
    console.log(`\n  misses (${split}, first 15):`);
    for (const m of misses.slice(0, 15)) console.log('   -', JSON.stringify(m.slice(0, 300)));
    console.log(`\n  false positives (${split}):`);
    for (const m of fps) console.log('   -', JSON.stringify(m.slice(0, 400)));
  }
}

// ------------------------------------------------------------------------------ secrets

interface SecretSample {
  text: string;
  positive: boolean;
  split: 'tune' | 'report';
  rule: string;
  corpus: string;
}
const secretSamples: SecretSample[] = [];
const gl = JSON.parse(readFileSync(join(corpora, 'secrets/gitleaks/gitleaks_rule_test_strings.json'), 'utf8')) as { rule_id: string; label: string; text: string }[];
// Exact key values gitleaks allowlists one by one (published keys such as the Google API keys
// embedded in public apps): real-format keys, so a format-based redactor redacts them. Counted
// as look-alikes, and also shown separately.
const toml = readFileSync(join(corpora, 'secrets/gitleaks/config/gitleaks.toml'), 'utf8');
const publishedKeys = [...toml.matchAll(/'''([A-Za-z0-9_-]{20,})'''/g)].map((m) => m[1]!);
const isPublished = (t: string): boolean => publishedKeys.some((k) => t.includes(k));
const secretTexts = new Set(gl.filter((g) => g.label === 'secret').map((g) => g.text));
let contradictory = 0;
for (const g of gl) {
  if (g.label !== 'secret' && secretTexts.has(g.text)) {
    contradictory++;
    continue;
  }
  secretSamples.push({ text: g.text, positive: g.label === 'secret', split: fnv1a(g.rule_id) % 2 === 0 ? 'tune' : 'report', rule: g.rule_id, corpus: 'gitleaks' });
}

const dsRoot = join(corpora, 'secrets/detect-secrets-testdata/test_data');
if (existsSync(join(dsRoot, 'baseline.file'))) {
  const baseline = JSON.parse(readFileSync(join(dsRoot, 'baseline.file'), 'utf8')) as { results: Record<string, { hashed_secret: string }[]> };
  const hashesOf = (file: string): Set<string> => new Set((baseline.results[file] ?? []).map((r) => r.hashed_secret));
  const walk = (dir: string): string[] =>
    readdirSync(dir).flatMap((n) => {
      const p = join(dir, n);
      return statSync(p).isDirectory() ? walk(p) : [p];
    });
  for (const file of walk(dsRoot)) {
    if (file.endsWith('baseline.file')) continue;
    const rel = relative(dsRoot, file);
    const content = readFileSync(file, 'utf8');
    // A private key file is one sample; other files are scanned line by line.
    const hashes = hashesOf(rel);
    const units = content.includes('PRIVATE KEY') ? [content] : content.split('\n').filter((l) => l.trim() !== '');
    for (const u of units) {
      const tokens = new Set([...u.split(/[\s'"=:,;()[\]{}]+/), ...[...u.matchAll(/["']([^"']*)["']/g)].map((m) => m[1]!)]);
      const positive = [...tokens].some((t) => t !== '' && t !== '!!binary' && hashes.has(createHash('sha1').update(t).digest('hex'))) || rel === 'files/private_key';
      secretSamples.push({ text: u, positive, split: 'report', rule: rel, corpus: 'detect-secrets' });
    }
  }
}

const secretSplits = only === 'all' ? (['tune', 'report'] as const) : ([only] as const);
for (const split of secretSplits) {
  const set = secretSamples.filter((s) => s.split === split);
  const byCorpus = new Map<string, { pos: number; hit: number; neg: number; touched: number; pubNeg: number; pubTouched: number }>();
  const byRule = new Map<string, { pos: number; hit: number; neg: number; touched: number }>();
  const byType = new Map<string, { pos: number; neg: number }>();
  const misses: string[] = [];
  const fps: string[] = [];
  for (const s of set) {
    const m = findSecrets(s.text);
    const hit = m.length > 0;
    if (!s.positive && isPublished(s.text)) {
      const c = byCorpus.get(s.corpus) ?? { pos: 0, hit: 0, neg: 0, touched: 0, pubNeg: 0, pubTouched: 0 };
      c.pubNeg++;
      if (hit) c.pubTouched++;
      byCorpus.set(s.corpus, c);
    }
    for (const map of [byCorpus, byRule] as Map<string, { pos: number; hit: number; neg: number; touched: number }>[]) {
      const key = map === byCorpus ? s.corpus : `${s.corpus}:${s.rule}`;
      const c = map.get(key) ?? { pos: 0, hit: 0, neg: 0, touched: 0, pubNeg: 0, pubTouched: 0 };
      if (s.positive) {
        c.pos++;
        if (hit) c.hit++;
      } else {
        c.neg++;
        if (hit) c.touched++;
      }
      map.set(key, c);
    }
    if (s.positive && !hit) misses.push(`${s.rule} :: ${s.text}`);
    if (!s.positive && hit) fps.push(`${m.map((x) => x.type).join(',')} (${s.rule}) :: ${s.text}`);
    for (const t of new Set(m.map((x) => x.type))) {
      const c = byType.get(t) ?? { pos: 0, neg: 0 };
      if (s.positive) c.pos++;
      else c.neg++;
      byType.set(t, c);
    }
  }
  table(
    `SECRETS — split ${split.toUpperCase()}${split === 'tune' ? ' (gitleaks rules with even hash)' : ' (gitleaks rules with odd hash; detect-secrets test data)'}`,
    ['corpus', 'secrets', 'redacted', 'recall', 'look-alikes', 'touched', 'false-positive', 'of which published keys', 'false-positive without them'],
    [...byCorpus].map(([k, v]) => [
      k, v.pos, v.hit, pct(v.hit, v.pos), v.neg, v.touched, pct(v.touched, v.neg),
      `${v.pubTouched}/${v.pubNeg}`, pct(v.touched - v.pubTouched, v.neg - v.pubNeg),
    ]),
  );
  table(
    `  per corpus rule / file (${split})`,
    ['rule or file', 'secrets', 'redacted', 'look-alikes', 'touched'],
    [...byRule].sort().map(([k, v]) => [k, v.pos, v.hit, v.neg, v.touched]),
  );
  table(`  per redaction type (${split}): samples where the type fired`, ['type', 'on secrets', 'on look-alikes'], [...byType].sort().map(([k, v]) => [k, v.pos, v.neg]));
  if (verbose) {
    console.log(`\n  missed secrets (${split}):`);
    for (const m of misses) console.log('   -', JSON.stringify(m.slice(0, 200)));
    console.log(`\n  touched look-alikes (${split}):`);
    for (const m of fps) console.log('   -', JSON.stringify(m.slice(0, 200)));
  }
}
console.log(`\nnotes: ${contradictory} gitleaks not_secret strings dropped because the same text is labelled secret under another rule.`);
console.log(
  'notes: gitleaks REPORT is not held out for gcp-service-account and sourcegraph-access-token: the gcp-service-account and vendor-token detectors were written after reading those misses (see the header).',
);
