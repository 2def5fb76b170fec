import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { EVENT_CATALOG, renderEventsMarkdown, isKnownEventType } from '../../src/audit/events.js';

const root = new URL('../../', import.meta.url).pathname;

test('docs/events.md is the catalog in src/audit/events.ts (regenerate: npx tsx src/cli/main.ts audit catalog > docs/events.md)', () => {
  assert.equal(readFileSync(join(root, 'docs/events.md'), 'utf8'), renderEventsMarkdown());
});

test('catalog names are noun.verb past tense, unique, with outcomes and fields', () => {
  const seen = new Set<string>();
  for (const e of EVENT_CATALOG) {
    assert.match(e.type, /^[a-z_]+(\.[a-z_]+)*\.[a-z_]+ed$/, `${e.type}: noun.verb, past tense`);
    assert.ok(!seen.has(e.type), `${e.type} listed twice`);
    seen.add(e.type);
    assert.ok(e.outcomes.length > 0 && e.description.length > 0);
  }
  for (const t of ['auth.succeeded', 'auth.failed', 'token.expired', 'tool.call.completed', 'tool.call.denied', 'session.created', 'session.ended',
    'tool.definition.changed', 'tool.definition.approved', 'tool.definition.blocked', 'output.sanitized', 'rate_limit.exceeded', 'config.changed',
    'anomaly.detected', 'request.rejected', 'incident.token.revoked', 'incident.tool.quarantined', 'incident.session.terminated']) {
    assert.ok(isKnownEventType(t), `${t} is in the catalog`);
  }
});

function* tsFiles(dir: string): Generator<string> {
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) yield* tsFiles(p);
    else if (p.endsWith('.ts')) yield p;
  }
}

test('every event type the code emits is in the catalog', () => {
  // In files that call emit: every `type: 'x.y'` literal, and every 'noun.verb' literal whose last
  // part is a past tense (event names kept in maps, e.g. DENIED_EVENT in the policy stage).
  const unknown: string[] = [];
  let found = 0;
  for (const file of tsFiles(join(root, 'src'))) {
    if (file.includes('/audit/')) continue;
    const text = readFileSync(file, 'utf8');
    if (!/\bemit\(/.test(text)) continue;
    const names = new Set<string>();
    for (const m of text.matchAll(/\btype:\s*'([a-z_]+(?:\.[a-z_]+)+)'/g)) names.add(m[1]!);
    for (const m of text.matchAll(/'([a-z_]+(?:\.[a-z_]+)*\.[a-z_]+ed)'/g)) names.add(m[1]!);
    for (const n of names) {
      found++;
      if (!isKnownEventType(n)) unknown.push(`${file.slice(root.length)}: ${n}`);
    }
  }
  assert.deepEqual(unknown, [], 'add these to src/audit/events.ts (and regenerate docs/events.md)');
  assert.ok(found > 0, 'the scan found the emitted types');
});
