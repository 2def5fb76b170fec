/**
 * Tools layer: list every tool, prompt, resource and resource template (all pages) through the
 * MCP SDK client, run the poisoning scanner (integrity/scan) on each definition and on the
 * server instructions, the text scanner (sanitizer/scan) on resource texts, classify dangerous
 * capabilities, flag toxic flows, and compare with a lockfile.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { scanDefinition, scanInstructions, scanTools, indexKnown } from '../integrity/scan.js';
import { definitionHash } from '../integrity/canonical.js';
import { readLockfile } from '../integrity/lockfile.js';
import type { DefinitionKind, Finding, RawDefinition, ScanResult } from '../integrity/types.js';
import { scanText } from '../sanitizer/scan.js';
import { classifyTool, type Capability, type Classified } from './capabilities.js';
import { control } from './controls.js';
import { makeFetch } from './http.js';
import { emptyLayer, type LayerResult, type PostureFinding, type ScanServerOptions, type ScanTarget } from './types.js';

export interface Listing {
  instructions?: string;
  serverInfo?: { name?: string; version?: string };
  tools: RawDefinition[];
  prompts: RawDefinition[];
  resources: RawDefinition[];
  resourceTemplates: RawDefinition[];
}

const MAX_ITEMS = 10_000;

async function allPages<T>(fetchPage: (cursor?: string) => Promise<{ items: T[]; nextCursor?: string }>): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | undefined;
  const seen = new Set<string>();
  do {
    const page = await fetchPage(cursor);
    out.push(...page.items);
    cursor = page.nextCursor;
    if (cursor !== undefined) {
      if (seen.has(cursor)) break; // a server that loops its cursor
      seen.add(cursor);
    }
  } while (cursor !== undefined && out.length < MAX_ITEMS);
  return out;
}

/** Connect with the SDK client (stdio or Streamable HTTP) and list everything. */
export async function listServer(target: ScanTarget, opts: ScanServerOptions & { insecure?: boolean; sendToken?: boolean }): Promise<Listing> {
  const client = new Client({ name: 'bastion-scan', version: '0.1.0' }, { capabilities: {} });
  let transport: Transport;
  if (target.kind === 'stdio') {
    transport = new StdioClientTransport({ command: target.command, args: target.args, ...(target.env ? { env: target.env } : {}), ...(target.cwd ? { cwd: target.cwd } : {}), stderr: 'ignore' });
  } else {
    const headers: Record<string, string> = opts.token && opts.sendToken !== false ? { authorization: `Bearer ${opts.token}` } : {};
    transport = new StreamableHTTPClientTransport(target.url, { requestInit: { headers }, fetch: makeFetch({ ca: opts.ca, insecure: opts.insecure }) as never });
  }
  const timeout = opts.timeoutMs ?? 10_000;
  await client.connect(transport, { timeout });
  try {
    const caps = client.getServerCapabilities() ?? {};
    const ro = { timeout };
    const tools = caps.tools ? await allPages(async (cursor) => { const r = await client.listTools(cursor ? { cursor } : {}, ro); return { items: r.tools as RawDefinition[], nextCursor: r.nextCursor }; }) : [];
    const prompts = caps.prompts ? await allPages(async (cursor) => { const r = await client.listPrompts(cursor ? { cursor } : {}, ro); return { items: r.prompts as RawDefinition[], nextCursor: r.nextCursor }; }) : [];
    const resources = caps.resources ? await allPages(async (cursor) => { const r = await client.listResources(cursor ? { cursor } : {}, ro); return { items: r.resources as RawDefinition[], nextCursor: r.nextCursor }; }) : [];
    const resourceTemplates = caps.resources ? await allPages(async (cursor) => { const r = await client.listResourceTemplates(cursor ? { cursor } : {}, ro); return { items: r.resourceTemplates as RawDefinition[], nextCursor: r.nextCursor }; }) : [];
    const info = client.getServerVersion();
    return { instructions: client.getInstructions(), serverInfo: info ? { name: info.name, version: info.version } : undefined, tools, prompts, resources, resourceTemplates };
  } finally {
    await client.close().catch(() => undefined);
  }
}

const LABEL: Record<DefinitionKind | 'server' | 'resource', string> = { tool: 'tool', prompt: 'prompt', resourceTemplate: 'resource template', server: 'server', resource: 'resource' };

function poisonFinding(kind: DefinitionKind | 'server', name: string, f: Finding): PostureFinding {
  return {
    id: `tools.poisoning.${f.rule}`,
    severity: f.severity,
    title: `${LABEL[kind]} "${name}": ${f.message}`,
    control: control('S1'),
    evidence: `${LABEL[kind]} "${name}" ${f.path || 'definition'}: ${f.evidence}`,
    fix: kind === 'server' ? 'Remove the offending text from the server instructions; instructions are shown to the model.' : `Rewrite the ${LABEL[kind]}'s text; pin reviewed definitions (bastion pin) so a change is held for review.`,
  };
}

const CAP_INFO: Partial<Record<Capability, { severity: PostureFinding['severity']; title: string; fix: string }>> = {
  'code-execution': { severity: 'high', title: 'executes code or commands', fix: 'Gate it behind its own scope and a person\'s approval; run the server sandboxed without network access.' },
  'credential-access': { severity: 'high', title: 'reads credentials or environment variables', fix: 'Remove the tool or deny it in the gateway policy (defaultTool: deny); never give the server secrets it does not need.' },
  'file-write': { severity: 'medium', title: 'writes, moves or deletes files', fix: 'Give it a separate write scope (servers.NAME.tools.TOOL.scopes), confine it to one folder, and keep an audit trail.' },
  'network-send': { severity: 'medium', title: 'sends requests or data out over the network', fix: 'Restrict the destinations (allowlist) or deny the tool; give it a separate scope.' },
};

export function capabilityFindings(classified: readonly Classified[]): PostureFinding[] {
  const out: PostureFinding[] = [];
  for (const c of classified) {
    for (const [cap, why] of Object.entries(c.capabilities) as Array<[Capability, string[]]>) {
      const info = CAP_INFO[cap];
      if (!info) continue;
      out.push({ id: `tools.capability.${cap}`, severity: info.severity, title: `Tool "${c.name}" ${info.title}`, control: control('S2'), evidence: `tool "${c.name}": ${why.join('; ')}`, fix: info.fix });
    }
  }
  return out;
}

function having(classified: readonly Classified[], caps: readonly Capability[]): Array<{ name: string; why: string }> {
  const out: Array<{ name: string; why: string }> = [];
  for (const c of classified) for (const cap of caps) if (c.capabilities[cap]) out.push({ name: c.name, why: `${cap}: ${c.capabilities[cap]![0]}` });
  return out;
}

export function toxicFlows(classified: readonly Classified[]): PostureFinding[] {
  const out: PostureFinding[] = [];
  const sources = having(classified, ['private-data-read', 'credential-access']);
  const sinks = having(classified, ['network-send']);
  const untrusted = having(classified, ['untrusted-input']);
  const actors = having(classified, ['code-execution', 'file-write']);
  const show = (xs: Array<{ name: string; why: string }>): string => [...new Map(xs.map((x) => [x.name, x])).values()].slice(0, 5).map((x) => `"${x.name}" (${x.why})`).join(', ');
  if (sources.length > 0 && sinks.length > 0) {
    out.push({ id: 'tools.toxic-flow.exfiltration', severity: 'high', title: 'Private data and a way to send it out on one server', control: control('S3'), evidence: `reads private data or credentials: ${show(sources)}; sends out: ${show(sinks)}`, fix: 'Split these tools across servers with separate credentials, deny one side in the gateway policy, or require approval for the sending tool.' });
  }
  if (untrusted.length > 0 && actors.length > 0) {
    out.push({ id: 'tools.toxic-flow.untrusted-to-action', severity: 'high', title: 'Untrusted content and a powerful action on one server', control: control('S3'), evidence: `reads untrusted content: ${show(untrusted)}; acts: ${show(actors)}`, fix: 'Sanitize tool output (mcp-bastion sanitize), and gate the acting tools behind a separate scope or approval.' });
  }
  return out;
}

async function compareLockfile(listing: Listing, opts: ScanServerOptions, out: LayerResult): Promise<void> {
  if (!opts.lockfile) return;
  const lock = await readLockfile(opts.lockfile);
  const names = Object.keys(lock.servers);
  const server = opts.lockfileServer ?? (names.length === 1 ? names[0] : undefined);
  if (names.length === 0) throw new Error(`--lockfile ${opts.lockfile}: no server is pinned in it (is the path right? bastion pin approve writes the pins)`);
  if (!server || !lock.servers[server]) {
    throw new Error(`--lockfile ${opts.lockfile}: ${server ? `no server "${server}" in it (it pins ${names.join(', ')})` : `it pins ${names.length} servers (${names.join(', ')}): name one with --lockfile-server`}`);
  }
  const pins = lock.servers[server]!.pins;
  const current = new Map<string, { kind: DefinitionKind; def: RawDefinition }>();
  for (const [kind, list] of [['tool', listing.tools], ['prompt', listing.prompts], ['resourceTemplate', listing.resourceTemplates]] as const) {
    for (const def of list) if (typeof def.name === 'string') current.set(`${kind}:${def.name}`, { kind, def });
  }
  let changed = 0;
  for (const [key, pin] of Object.entries(pins)) {
    const cur = current.get(key);
    if (!cur) {
      out.findings.push({ id: 'tools.lockfile.removed', severity: 'low', title: `${LABEL[pin.kind]} "${pin.name}" removed since it was pinned`, control: control('S4'), evidence: `pinned in ${opts.lockfile} (server ${server}, approved ${pin.approvedAt} by ${pin.approvedBy}); not listed now`, fix: 'Confirm the removal was intended, then update the lockfile (bastion pin).' });
      continue;
    }
    const h = definitionHash(cur.kind, cur.def);
    if (h !== pin.hash) {
      changed++;
      out.findings.push({ id: 'tools.lockfile.changed', severity: 'high', title: `${LABEL[pin.kind]} "${pin.name}" changed since it was pinned (possible rug pull)`, control: control('S4'), evidence: `pinned ${pin.hash.slice(0, 19)}… (approved ${pin.approvedAt} by ${pin.approvedBy}), now ${h.slice(0, 19)}…`, fix: 'Review the difference (bastion pin diff) before approving; keep the gateway in integrity mode strict so changed definitions are held.' });
    }
  }
  for (const [key, cur] of current) {
    if (pins[key]) continue;
    out.findings.push({ id: 'tools.lockfile.new', severity: 'medium', title: `${LABEL[cur.kind]} "${String(cur.def.name)}" is new since the last pin`, control: control('S4'), evidence: `not in ${opts.lockfile} (server ${server})`, fix: 'Review the new definition and pin it (bastion pin approve).' });
  }
  if (changed === 0) out.passed.push(`pinned definitions unchanged (${Object.keys(pins).length} pins of server ${server})`);
}

export async function checkTools(listing: Listing, opts: ScanServerOptions): Promise<LayerResult> {
  const out = emptyLayer();
  const results: ScanResult[] = [];
  results.push(...scanTools(listing.tools));
  const idx = indexKnown([]);
  for (const p of listing.prompts) results.push(scanDefinition('prompt', p, {}, idx));
  for (const t of listing.resourceTemplates) results.push(scanDefinition('resourceTemplate', t, {}, idx));
  results.push(scanInstructions(listing.instructions));
  for (const r of results) for (const f of r.findings) out.findings.push(poisonFinding(r.kind, r.name, f));
  // Static resources: their texts through the output text scanner (injection, hidden characters, secrets).
  for (const r of listing.resources) {
    const text = ['name', 'title', 'description'].map((k) => (typeof r[k] === 'string' ? (r[k] as string) : '')).filter(Boolean).join('\n');
    if (!text) continue;
    const rep = scanText(text);
    for (const f of rep.findings) {
      if (f.severity === 'low') continue;
      out.findings.push({ id: `tools.resource-text.${f.rule}`, severity: f.severity, title: `resource "${String(r.uri ?? r.name)}": ${f.message}`, control: control('S1'), evidence: `resource "${String(r.uri ?? r.name)}": ${f.evidence}`, fix: 'Remove instructions and hidden characters from resource names and descriptions.' });
    }
  }
  const poisoned = out.findings.length;
  const counts = `${listing.tools.length} tools, ${listing.prompts.length} prompts, ${listing.resources.length} resources, ${listing.resourceTemplates.length} resource templates`;
  if (poisoned === 0) out.passed.push(`no poisoning in ${counts}${listing.instructions ? ' and the instructions' : ''}`);
  else out.passed.push(`scanned ${counts}`);
  const classified = listing.tools.map(classifyTool);
  const caps = capabilityFindings(classified);
  out.findings.push(...caps);
  if (caps.length === 0) out.passed.push('no tool executes code, writes files, sends data out or reads credentials (by name, description and schema)');
  const flows = toxicFlows(classified);
  out.findings.push(...flows);
  if (flows.length === 0) out.passed.push('no toxic flow (private data + network send; untrusted content + action)');
  await compareLockfile(listing, opts, out);
  return out;
}
