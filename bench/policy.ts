/**
 * Micro-bench of the authorization layer: the cost of one decision with 10 and with 10,000
 * policy rules (it must stay flat: the policy is compiled to lookups, not scanned), the
 * authorization.policy stage on a tools/call, tools/list filtering, Cedar when loaded, and
 * argument validation (warm, and the one-off compile of a schema).
 *
 * `npx tsx bench/policy.ts` prints a table; `runPolicyBench()` returns the figures for the
 * main bench report. Figures are CPU microseconds per call (mean over many calls after warm-up),
 * so other processes on a shared machine do not inflate them.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseConfig } from '../src/config/load.js';
import type { Config } from '../src/config/schema.js';
import { compilePolicy, type MountPolicy } from '../src/policy/compile.js';
import { loadPolicy } from '../src/policy/load.js';
import { ArgumentValidator } from '../src/policy/arguments.js';
import { policyStage } from '../src/stages/authorization/policy.js';
import { ANONYMOUS, type Principal } from '../src/identity/types.js';
import type { RequestContext, SessionView, ToolDefinition } from '../src/pipeline/context.js';
import type { AuditLog } from '../src/audit/types.js';

export interface PolicyBenchResult {
  /** µs per decide() call. */
  decideUs: { rules10: number; rules10000: number; rules10000Spread: number; rules10000Miss: number };
  /** µs per authorization.policy onRequest for an allowed tools/call. */
  stageCallUs: { rules10: number; rules10000: number };
  /** µs to filter a 100-tool tools/list result. */
  listFilter100Us: { rules10: number; rules10000: number };
  /** µs per decide() with a Cedar policy set loaded (YAML + Cedar). */
  cedarDecideUs: number | undefined;
  /** µs per validated tools/call arguments (warm cache). */
  argumentValidationUs: { small: number; medium: number };
  /** ms to compile a schema the first time (one-off per schema). */
  schemaCompileMs: number;
}

const NOW = Date.now();

function principal(): Principal {
  return {
    ...ANONYMOUS,
    subject: 'alice',
    issuer: 'https://as.example',
    clientId: 'c1',
    authMethod: 'dpop',
    scopes: new Set(['notes:read', 'notes:write', 's:7']),
    roles: ['editor', 'r3'],
    groups: ['g1'],
    issuedAt: Math.floor(NOW / 1000) - 10,
  };
}

function makeConfig(rules: number): Config {
  const tools: Record<string, unknown> = {};
  for (let i = 0; i < rules; i++) {
    tools[`tool_${i}`] =
      i % 3 === 0
        ? { scopes: [`s:${i % 10}`] }
        : i % 3 === 1
          ? { scopes: ['notes:read'], allow: { roles: ['editor', `r${i % 7}`], subjects: [`user${i}`] } }
          : { allow: { groups: ['g1'] }, deny: { subjects: [`bad${i}`] }, require: { authMethod: ['dpop', 'mtls+bearer'], maxTokenAgeSeconds: 300, sourceCidrs: ['10.0.0.0/8', 'fd00::/8'] } };
  }
  return parseConfig({ servers: { notes: { stdio: { command: 'node' }, tools, defaultTool: 'deny' } } }).config as Config;
}

/**
 * CPU microseconds of this process (user + system): unlike wall time, not inflated when other
 * processes hold the cores.
 */
function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** Mean CPU µs per call of fn over `n` calls, after a warm-up; best of 3 rounds. */
function measure(fn: (i: number) => unknown, n: number): number {
  let sink = 0;
  for (let i = 0; i < Math.min(n, 20_000); i++) sink ^= fn(i) ? 1 : 0;
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const t0 = cpuUs();
    for (let i = 0; i < n; i++) sink ^= fn(i) ? 1 : 0;
    const us = (cpuUs() - t0) / n;
    if (us < best) best = us;
  }
  if (sink === 42) process.stdout.write('');
  return best;
}

async function measureAsync(fn: (i: number) => Promise<unknown>, n: number): Promise<number> {
  for (let i = 0; i < Math.min(n, 5_000); i++) await fn(i);
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const t0 = cpuUs();
    for (let i = 0; i < n; i++) await fn(i);
    const us = (cpuUs() - t0) / n;
    if (us < best) best = us;
  }
  return best;
}

const nullAudit: AuditLog = { emit() {}, async flush() {}, async close() {} };

function decideBench(m: MountPolicy, rules: number, targets: string[]): number {
  const p = principal();
  const ctx = { clientIp: '10.1.2.3', now: NOW };
  return measure((i) => m.decide(p, 'tools/call', targets[i % targets.length]!, ctx).outcome === 'allow', 200_000 + rules * 0);
}

async function stageBench(cfg: Config, toolName: string): Promise<number> {
  const policy = compilePolicy(cfg);
  const stage = policyStage({ policy, audit: nullAudit, now: () => NOW });
  const tools = new Map<string, ToolDefinition>([[toolName, { name: toolName, inputSchema: { type: 'object' } }]]);
  const session: SessionView = { id: 's', mount: 'notes', owner: undefined, protocolVersion: undefined, createdAt: 0, upstreamTools: async () => tools };
  const p = principal();
  const mount = { name: 'notes', config: cfg.servers.notes!, resource: 'https://gw.example/mcp/notes' };
  const http = { method: 'POST', path: '/mcp/notes', query: '', headers: {}, remoteAddress: '10.1.2.3', secure: true, peerCertificate: undefined, readBody: async () => Buffer.alloc(0) };
  const message = { jsonrpc: '2.0' as const, id: 1, method: 'tools/call', params: { name: toolName, arguments: {} } };
  return measureAsync(async () => {
    const ctx: RequestContext = { requestId: 'r', startedAt: 0, mount, http, session, message, principal: p, decisions: [], timings: {}, locals: {} };
    await stage.onRequest!(ctx);
  }, 100_000);
}

function listBench(cfg: Config, names: string[]): number {
  const stage = policyStage({ policy: compilePolicy(cfg), audit: nullAudit, now: () => NOW });
  const tools = names.map((name) => ({ name, description: 'd', inputSchema: { type: 'object' } }));
  const mount = { name: 'notes', config: cfg.servers.notes!, resource: 'https://gw.example/mcp/notes' };
  const msgCtx = { mount, session: {} as SessionView, principal: principal(), request: undefined, method: 'tools/list' };
  return measure(() => stage.onUpstreamMessage!(msgCtx, { jsonrpc: '2.0', id: 1, result: { tools } }), 10_000);
}

export async function runPolicyBench(): Promise<PolicyBenchResult> {
  const c10 = makeConfig(10);
  const c10k = makeConfig(10_000);
  const m10 = compilePolicy(c10).forMount('notes');
  const m10k = compilePolicy(c10k).forMount('notes');
  // Targets spread over the rule set (hits), and names with no rule (defaultTool).
  const hits10 = Array.from({ length: 10 }, (_, i) => `tool_${i}`);
  const hits10k = Array.from({ length: 1000 }, (_, i) => `tool_${(i * 7919) % 10_000}`);
  const misses = Array.from({ length: 1000 }, (_, i) => `unknown_${i}`);
  // Same 10 targets for both sizes (same work per call: only the rule count differs), then
  // 1,000 targets spread over the 10,000 rules (more memory touched: cache misses, not scans).
  const decideUs = {
    rules10: decideBench(m10, 10, hits10),
    rules10000: decideBench(m10k, 10_000, hits10),
    rules10000Spread: decideBench(m10k, 10_000, hits10k),
    rules10000Miss: decideBench(m10k, 10_000, misses),
  };
  const stageCallUs = { rules10: await stageBench(c10, 'tool_1'), rules10000: await stageBench(c10k, 'tool_7777') };
  // 100 listed tools, every one with a rule: tool_0..9 ten times over for 10 rules, 100 distinct for 10,000.
  const listFilter100Us = {
    rules10: listBench(c10, Array.from({ length: 100 }, (_, i) => `tool_${i % 10}`)),
    rules10000: listBench(c10k, Array.from({ length: 100 }, (_, i) => `tool_${i * 97}`)),
  };

  let cedarDecideUs: number | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'bastion-bench-'));
  try {
    const file = join(dir, 'p.cedar');
    writeFileSync(
      file,
      `permit(principal, action, resource in Mount::"notes");
forbid(principal, action == Action::"tools/call", resource == Tool::"notes/tool_5") unless { principal in Role::"admin" };
forbid(principal, action, resource) when { context has arguments && context.arguments has path && context.arguments.path like "/etc/*" };`,
    );
    const cedarPolicy = await loadPolicy({ ...c10k, policy: { cedar: file } });
    const m = cedarPolicy.forMount('notes');
    const p = principal();
    const ctx = { clientIp: '10.1.2.3', now: NOW, arguments: { path: '/srv/notes/a', limit: 5 } };
    cedarDecideUs = measure((i) => m.decide(p, 'tools/call', hits10k[i % hits10k.length]!, ctx).outcome === 'allow', 5_000);
  } catch {
    cedarDecideUs = undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const limits = { maxArgumentBytes: 262_144, maxArgumentDepth: 32, maxSchemaBytes: 262_144, maxSchemaDepth: 48, maxSchemaCost: 2000, unknownArguments: 'refuse' as const };
  const small = { type: 'object', properties: { path: { type: 'string', pattern: '^/srv/' }, limit: { type: 'integer', maximum: 100 } }, required: ['path'] };
  const medium = {
    type: 'object',
    properties: {
      query: { type: 'string', maxLength: 500 },
      filters: { type: 'array', maxItems: 20, items: { type: 'object', properties: { field: { type: 'string', enum: ['a', 'b', 'c', 'd'] }, value: { type: ['string', 'number'] } }, required: ['field', 'value'], additionalProperties: false } },
      sort: { type: 'object', properties: { by: { type: 'string' }, desc: { type: 'boolean' } } },
      page: { type: 'integer', minimum: 1 },
      tags: { type: 'array', items: { type: 'string' }, uniqueItems: true },
    },
    required: ['query'],
  };
  const v = new ArgumentValidator();
  // The first compile also builds ajv and its meta-schemas; the figure is the second one.
  v.validate({ tool: 'first', schema: { ...medium, title: 'cold' }, args: { query: 'x' }, limits, unknownArguments: 'refuse' });
  const t1 = cpuUs();
  v.validate({ tool: 'second', schema: { ...medium, title: 'cold2' }, args: { query: 'x' }, limits, unknownArguments: 'refuse' });
  const schemaCompileMs = (cpuUs() - t1) / 1000;
  const smallArgs = { path: '/srv/notes/a.md', limit: 10 };
  const mediumArgs = { query: 'find the notes', filters: [{ field: 'a', value: 1 }, { field: 'b', value: 'x' }], sort: { by: 'date', desc: true }, page: 2, tags: ['x', 'y', 'z'] };
  const argumentValidationUs = {
    small: measure(() => v.validate({ tool: 's', schema: small, args: smallArgs, limits, unknownArguments: 'refuse' }).ok, 100_000),
    medium: measure(() => v.validate({ tool: 'm', schema: medium, args: mediumArgs, limits, unknownArguments: 'refuse' }).ok, 50_000),
  };
  return { decideUs, stageCallUs, listFilter100Us, cedarDecideUs, argumentValidationUs, schemaCompileMs };
}

export function formatPolicyBench(r: PolicyBenchResult): string {
  const f = (n: number | undefined) => (n === undefined ? 'n/a' : n < 10 ? n.toFixed(2) : n.toFixed(1));
  return [
    'Authorization micro-bench (CPU µs per call, best of 3 rounds)',
    `  decide()                      10 rules: ${f(r.decideUs.rules10)}   10,000 rules: ${f(r.decideUs.rules10000)}   (1,000 targets spread over 10,000 rules: ${f(r.decideUs.rules10000Spread)}; no rule matches: ${f(r.decideUs.rules10000Miss)})`,
    `  authorization.policy call     10 rules: ${f(r.stageCallUs.rules10)}   10,000 rules: ${f(r.stageCallUs.rules10000)}`,
    `  tools/list filter (100 tools) 10 rules: ${f(r.listFilter100Us.rules10)}   10,000 rules: ${f(r.listFilter100Us.rules10000)}`,
    `  decide() with Cedar:          ${f(r.cedarDecideUs)}`,
    `  argument validation           small schema: ${f(r.argumentValidationUs.small)}   medium schema: ${f(r.argumentValidationUs.medium)}`,
    `  schema compile (once each):   ${r.schemaCompileMs.toFixed(2)} ms`,
  ].join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runPolicyBench().then(
    (r) => {
      console.log(formatPolicyBench(r));
      if (process.argv.includes('--json')) console.log(JSON.stringify(r));
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
