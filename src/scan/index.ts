/**
 * The posture scanner as a library: `scanServer(target, options)` runs the four layers' checks
 * and returns a graded report; renderers in report/.
 */
import { checkAuthorization } from './authorization.js';
import { control } from './controls.js';
import { buildReport } from './grade.js';
import { describe, initializeBody, MCP_HEADERS, probe } from './http.js';
import { checkIdentity, type IdentityFacts } from './identity.js';
import { checkTools, listServer, type Listing } from './tools.js';
import { checkTransport } from './transport.js';
import { emptyLayer, type LayerName, type LayerResult, type PostureReport, type ScanServerOptions, type ScanTarget } from './types.js';

export type { PostureReport, PostureFinding, LayerReport, Grade, ScanSeverity, LayerName, ScanTarget, ScanServerOptions } from './types.js';
export { CONTROLS } from './controls.js';

export function targetLabel(t: ScanTarget): string {
  return t.kind === 'http' ? t.url.href : `stdio: ${[t.command, ...t.args].join(' ')}`;
}

function notApplicable(layer: string, why: string): LayerResult {
  const out = emptyLayer();
  out.passed.push(`${layer}: not applicable (${why})`);
  return out;
}

/** `s` with the token replaced by `<token>` (a server may quote the credential it got in an error). */
function hideIn(s: string, token: string | undefined): string {
  return token ? s.split(token).join('<token>') : s;
}

function errMessage(err: unknown): string {
  return (err as Error)?.message ?? String(err);
}

export async function scanServer(target: ScanTarget, opts: ScanServerOptions & { insecure?: boolean } = {}): Promise<PostureReport> {
  const label = targetLabel(target);
  const results = {} as Record<LayerName, LayerResult>;
  if (target.kind === 'stdio') {
    results.transport = notApplicable('transport', 'stdio: a local pipe to a child process');
    results.identity = notApplicable('identity', 'stdio: the server runs as the launching user; MCP authorization applies to HTTP transports');
    const authz = emptyLayer();
    authz.findings.push({ id: 'authorization.stdio-all-tools', severity: 'info', title: 'Every tool is available to the launching client', control: control('A1'), evidence: 'stdio servers have no caller identity: whoever starts the process can call every tool', fix: 'To grant tools per user, run it behind mcp-bastion (servers.NAME.stdio) with a policy.' });
    results.authorization = authz;
    opts.onProgress?.('tools: listing over stdio');
    const listing = await listServer(target, opts);
    opts.onProgress?.('tools: scanning definitions');
    results.tools = await checkTools(listing, opts);
    return buildReport(label, results);
  }
  const url = target.url;
  const auth: Record<string, string> = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
  opts.onProgress?.(`probing ${url.href}`);
  const first = await probe(url, { method: 'POST', headers: { ...MCP_HEADERS }, body: initializeBody(), timeoutMs: opts.timeoutMs, ca: opts.ca });
  const t = await checkTransport(url, opts, auth, first);
  results.transport = t.layer;
  const sendToken = t.certValid || opts.insecure === true;
  const authUsed = sendToken ? auth : {};
  if (opts.token && !sendToken) results.transport.passed.push('the token was NOT sent: the certificate did not verify (pass --insecure to send it anyway)');
  const id = await checkIdentity(url, opts, authUsed, first);
  results.identity = id.layer;
  const facts: IdentityFacts = id.facts;

  let anonymous: Listing | undefined;
  let withToken: Listing | undefined;
  const tools = emptyLayer();
  try {
    if (facts.open) {
      opts.onProgress?.('tools: listing without credentials');
      anonymous = await listServer(target, { ...opts, sendToken: false, insecure: true });
    }
    if (opts.token && sendToken) {
      opts.onProgress?.('tools: listing with the token');
      withToken = await listServer(target, { ...opts, insecure: opts.insecure === true || !t.certValid ? true : false });
    }
  } catch (err) {
    tools.findings.push({ id: 'tools.list-failed', severity: 'low', title: 'Could not list the server\'s definitions', control: control('S1'), evidence: hideIn(errMessage(err), opts.token).slice(0, 300), fix: 'Check the URL and the token (--token or BASTION_SCAN_TOKEN); the scan of definitions needs a working MCP session.' });
  }
  results.authorization = checkAuthorization(facts, anonymous, withToken);
  const listing = withToken ?? anonymous;
  if (listing) {
    opts.onProgress?.('tools: scanning definitions');
    const r = await checkTools(listing, opts);
    tools.findings.push(...r.findings);
    tools.passed.push(...r.passed);
  } else if (tools.findings.length === 0) {
    tools.findings.push({ id: 'tools.not-listed', severity: 'low', title: 'Definitions not scanned: authentication required', control: control('S1'), evidence: `initialize without credentials answered ${describe(first)}`, fix: 'Scan again with --token TOKEN (or BASTION_SCAN_TOKEN) to scan the tools.' });
  }
  results.tools = tools;
  return buildReport(label, results);
}
