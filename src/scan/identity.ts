/**
 * Identity layer checks of an HTTP target: unauthenticated access, the 401 challenge, RFC 9728
 * protected resource metadata, the authorization server's metadata (RFC 8414 / OIDC discovery),
 * tokens in the query string, arbitrary bearer strings, session ids.
 */
import { randomBytes } from 'node:crypto';
import { control } from './controls.js';
import { describe, header, initializeBody, isResponse, jsonOf, MCP_HEADERS, probe, PROTOCOL_VERSION, type ProbeResult } from './http.js';
import { isLoopbackHost } from './transport.js';
import { emptyLayer, type LayerResult, type ScanServerOptions } from './types.js';

export interface IdentityFacts {
  /** Unauthenticated initialize succeeded. */
  open: boolean;
  /** The protected resource metadata, when found and valid JSON. */
  prm?: Record<string, unknown>;
  prmUrl?: string;
}

/** Parse `Bearer realm="x", resource_metadata="…"` into scheme and parameters. */
export function parseChallenge(v: string): { scheme: string; params: Record<string, string> } {
  const m = /^\s*([A-Za-z0-9_-]+)\s*(.*)$/s.exec(v);
  const params: Record<string, string> = {};
  if (!m) return { scheme: '', params };
  const re = /([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m[2] ?? '')) !== null) params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
  return { scheme: m[1]!, params };
}

/** Estimated entropy in bits of one id from its alphabet and length (an upper bound). */
export function idEntropyBits(id: string): number {
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i.test(id)) return 122;
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) return 32; // time-based or other non-random UUID versions
  const alphabet = /^[0-9]+$/.test(id) ? 10 : /^[0-9a-f]+$/i.test(id) ? 16 : /^[A-Za-z0-9]+$/.test(id) ? 62 : 64;
  return Math.floor(id.length * Math.log2(alphabet));
}

/** Ids that share all but a short suffix, or that parse as numbers close together. */
export function looksSequential(ids: readonly string[]): boolean {
  if (ids.length < 2) return false;
  const nums = ids.map((s) => (/^\d{1,15}$/.test(s) ? Number(s) : /^[0-9a-f]{1,12}$/i.test(s) ? parseInt(s, 16) : NaN));
  if (nums.every((n) => !Number.isNaN(n))) {
    const sorted = [...nums].sort((a, b) => a - b);
    for (let i = 1; i < sorted.length; i++) if (sorted[i]! - sorted[i - 1]! < 1_000_000) return true;
  }
  const first = ids[0]!;
  let prefix = first.length;
  for (const s of ids.slice(1)) {
    let i = 0;
    while (i < prefix && i < s.length && s[i] === first[i]) i++;
    prefix = i;
  }
  const varying = Math.min(...ids.map((s) => s.length)) - prefix;
  return ids.every((s) => s.length === first.length) && varying > 0 && varying <= 4;
}

async function getJson(url: URL, opts: ScanServerOptions): Promise<{ r: ProbeResult; json?: Record<string, unknown> }> {
  const r = await probe(url, { headers: { accept: 'application/json' }, timeoutMs: opts.timeoutMs, ca: opts.ca });
  if (!isResponse(r) || r.status !== 200) return { r };
  try {
    const v = JSON.parse(r.body) as unknown;
    return { r, json: v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined };
  } catch {
    return { r };
  }
}

function normalizeResource(u: string): string {
  try {
    const x = new URL(u);
    x.hash = '';
    return x.href.replace(/\/$/, '');
  } catch {
    return u;
  }
}

async function checkPrm(url: URL, challengeUrl: string | undefined, opts: ScanServerOptions, out: LayerResult, facts: IdentityFacts): Promise<void> {
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  const candidates = [...(challengeUrl ? [challengeUrl] : []), `${url.origin}/.well-known/oauth-protected-resource${path}`, `${url.origin}/.well-known/oauth-protected-resource`];
  let found: { at: string; json: Record<string, unknown> } | undefined;
  const tried: string[] = [];
  for (const c of [...new Set(candidates)]) {
    let u: URL;
    try {
      u = new URL(c);
    } catch {
      continue;
    }
    const { r, json } = await getJson(u, opts);
    tried.push(`${u.href} → ${isResponse(r) ? r.status : describe(r)}`);
    if (json) {
      found = { at: u.href, json };
      break;
    }
  }
  if (!found) {
    out.findings.push({ id: 'identity.prm-missing', severity: 'high', title: 'No protected resource metadata (RFC 9728)', control: control('I3'), evidence: tried.join('; '), fix: `Publish ${url.origin}/.well-known/oauth-protected-resource${path} with "resource": "${url.href}" and "authorization_servers" (mcp-bastion publishes it for every mount).` });
    return;
  }
  facts.prm = found.json;
  facts.prmUrl = found.at;
  const resource = found.json.resource;
  const as = found.json.authorization_servers;
  const problems: string[] = [];
  if (typeof resource !== 'string') problems.push('"resource" is missing');
  if (!Array.isArray(as) || as.length === 0 || !as.every((x) => typeof x === 'string')) problems.push('"authorization_servers" is missing or empty');
  if (problems.length > 0) {
    out.findings.push({ id: 'identity.prm-invalid', severity: 'high', title: 'Protected resource metadata is incomplete', control: control('I3'), evidence: `${found.at}: ${problems.join('; ')}`, fix: 'Include "resource" (the MCP URL) and "authorization_servers" (RFC 9728 §2; the MCP authorization spec requires authorization_servers).' });
  }
  if (typeof resource === 'string') {
    if (normalizeResource(resource) !== normalizeResource(url.href)) {
      out.findings.push({ id: 'identity.prm-resource-mismatch', severity: 'high', title: 'Metadata "resource" is not this URL', control: control('I3'), evidence: `${found.at} says resource "${resource}", scanned URL is ${url.href}`, fix: 'The "resource" must be the MCP URL clients use (RFC 9728 §3.3: clients must refuse metadata whose resource differs); tokens are audience-bound to it (RFC 8707).' });
    } else if (problems.length === 0) out.passed.push(`protected resource metadata at ${found.at}, resource matches`);
  }
  if (Array.isArray(as) && typeof as[0] === 'string') await checkAs(as[0], opts, out);
}

async function checkAs(issuer: string, opts: ScanServerOptions, out: LayerResult): Promise<void> {
  let iss: URL;
  try {
    iss = new URL(issuer);
  } catch {
    out.findings.push({ id: 'identity.as-invalid', severity: 'high', title: 'Authorization server is not a URL', control: control('I3'), evidence: `authorization_servers[0] = ${JSON.stringify(issuer).slice(0, 200)}`, fix: 'List the issuer URL of the authorization server.' });
    return;
  }
  const path = iss.pathname === '/' ? '' : iss.pathname.replace(/\/$/, '');
  const candidates = [`${iss.origin}/.well-known/oauth-authorization-server${path}`, `${iss.origin}/.well-known/openid-configuration${path}`, `${iss.origin}${path}/.well-known/openid-configuration`];
  let meta: { at: string; json: Record<string, unknown> } | undefined;
  const tried: string[] = [];
  for (const c of [...new Set(candidates)]) {
    const { r, json } = await getJson(new URL(c), opts);
    tried.push(`${c} → ${isResponse(r) ? r.status : describe(r)}`);
    if (json) {
      meta = { at: c, json };
      break;
    }
  }
  if (!meta) {
    out.findings.push({ id: 'identity.as-metadata-missing', severity: 'medium', title: 'Authorization server metadata not found', control: control('I4'), evidence: tried.join('; '), fix: 'Serve RFC 8414 metadata (or OIDC discovery) at the issuer so clients can find its endpoints and check PKCE support.' });
    return;
  }
  const m = meta.json;
  const methods = Array.isArray(m.code_challenge_methods_supported) ? (m.code_challenge_methods_supported as unknown[]) : undefined;
  if (!methods || !methods.includes('S256')) {
    out.findings.push({ id: 'identity.pkce-s256-missing', severity: 'high', title: 'Authorization server does not advertise PKCE S256', control: control('I4'), evidence: `${meta.at}: code_challenge_methods_supported = ${JSON.stringify(methods ?? null)}`, fix: 'Support PKCE with S256 and list it in code_challenge_methods_supported (MCP clients must refuse to proceed otherwise).' });
  } else out.passed.push(`authorization server ${iss.origin} advertises PKCE S256`);
  const grants = Array.isArray(m.grant_types_supported) ? (m.grant_types_supported as unknown[]) : [];
  const responses = Array.isArray(m.response_types_supported) ? (m.response_types_supported as unknown[]).map(String) : [];
  const bad = [
    ...(grants.includes('implicit') || responses.some((r) => r.split(' ').includes('token')) ? ['implicit'] : []),
    ...(grants.includes('password') ? ['password'] : []),
  ];
  if (bad.length > 0) {
    out.findings.push({ id: 'identity.legacy-grants', severity: 'medium', title: `Authorization server offers ${bad.join(' and ')} grant`, control: control('I4'), evidence: `${meta.at}: grant_types_supported = ${JSON.stringify(grants)}; response_types_supported = ${JSON.stringify(responses)}`, fix: 'Disable the implicit and resource owner password grants (removed in OAuth 2.1).' });
  } else out.passed.push('no implicit or password grant advertised');
}

export async function checkIdentity(url: URL, opts: ScanServerOptions, auth: Record<string, string>, first: ProbeResult): Promise<{ layer: LayerResult; facts: IdentityFacts }> {
  const out = emptyLayer();
  const facts: IdentityFacts = { open: false };
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const base = { method: 'POST', body: initializeBody(), timeoutMs, ca: opts.ca };
  opts.onProgress?.('identity: unauthenticated initialize');
  const unauth = first;
  if (!isResponse(unauth)) {
    out.findings.push({ id: 'identity.unreachable', severity: 'info', title: 'Server did not answer', control: control('I1'), evidence: describe(unauth), fix: 'Check the URL.' });
    return { layer: out, facts };
  }
  facts.open = unauth.status === 200 && jsonOf(unauth)?.result !== undefined;
  if (facts.open) {
    const loop = isLoopbackHost(url.hostname);
    out.findings.push({
      id: 'identity.no-authentication',
      severity: loop ? 'high' : 'critical',
      title: 'Unauthenticated initialize succeeds',
      control: control('I1'),
      evidence: `initialize without credentials answered ${describe(unauth)}${loop ? ' (loopback listener)' : ''}`,
      fix: 'Require OAuth 2.1 bearer tokens (put mcp-bastion in front: auth.issuers + servers.NAME.auth.required).',
    });
  } else if (unauth.status === 401) {
    out.passed.push('unauthenticated initialize refused with 401');
    const www = header(unauth, 'www-authenticate') ?? '';
    const ch = parseChallenge(www);
    if (ch.scheme.toLowerCase() !== 'bearer') {
      out.findings.push({ id: 'identity.challenge-scheme', severity: 'medium', title: '401 without a Bearer challenge', control: control('I2'), evidence: `WWW-Authenticate: ${www || '(absent)'}`, fix: 'Answer 401 with WWW-Authenticate: Bearer resource_metadata="…" (RFC 6750, RFC 9728 §5.1).' });
    } else if (!ch.params.resource_metadata) {
      out.findings.push({ id: 'identity.challenge-no-metadata', severity: 'medium', title: '401 challenge without resource_metadata', control: control('I2'), evidence: `WWW-Authenticate: ${www}`, fix: 'Add resource_metadata="<URL of the protected resource metadata>" so MCP clients can discover the authorization server.' });
    } else out.passed.push(`401 challenge: ${www.slice(0, 200)}`);
    await checkPrm(url, ch.params.resource_metadata, opts, out, facts);
  } else {
    out.findings.push({ id: 'identity.unexpected-status', severity: 'low', title: `Unauthenticated initialize answered ${unauth.status}`, control: control('I2'), evidence: describe(unauth), fix: 'A protected MCP endpoint answers 401 with a Bearer challenge to a request without credentials.' });
    await checkPrm(url, undefined, opts, out, facts);
  }

  if (!facts.open) {
    opts.onProgress?.('identity: tokens in the query string and garbage bearer tokens');
    const garbage = `bastion-scan-${randomBytes(12).toString('hex')}`;
    const q = new URL(url);
    q.searchParams.set('access_token', garbage);
    const rq = await probe(q, { ...base, headers: { ...MCP_HEADERS } });
    if (isResponse(rq) && rq.status === 200) {
      out.findings.push({ id: 'identity.query-token-accepted', severity: 'critical', title: 'A garbage token in the query string is accepted', control: control('I5'), evidence: `initialize with ?access_token=<random> answered ${describe(rq)} (without it: ${unauth.status})`, fix: 'Read tokens only from the Authorization header, verify them, and refuse access_token in the query (OAuth 2.1 §5.1.1).' });
    } else out.passed.push(`access_token in the query string does not grant access (${isResponse(rq) ? rq.status : describe(rq)})`);
    const rb = await probe(url, { ...base, headers: { ...MCP_HEADERS, authorization: `Bearer ${garbage}` } });
    if (isResponse(rb) && rb.status === 200) {
      out.findings.push({ id: 'identity.any-bearer-accepted', severity: 'critical', title: 'Any bearer string is accepted', control: control('I5'), evidence: `initialize with Authorization: Bearer <random string> answered ${describe(rb)}`, fix: 'Verify every token (signature, issuer, audience = this resource, expiry) before serving.' });
    } else out.passed.push(`a random bearer string is refused (${isResponse(rb) ? rb.status : describe(rb)})`);
  }

  // Session ids: collect a few (when sessions can be opened with what we have).
  const canOpen = facts.open || Boolean(auth.authorization);
  if (canOpen) {
    opts.onProgress?.('identity: session ids');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await probe(url, { ...base, headers: { ...MCP_HEADERS, ...auth } });
      const sid = header(r, 'mcp-session-id');
      if (sid) ids.push(sid);
    }
    if (ids.length === 0) out.passed.push('no session ids issued (stateless server)');
    else {
      const bits = Math.min(...ids.map(idEntropyBits));
      const seq = looksSequential(ids);
      const shown = ids.slice(0, 3).map((s) => `${s.slice(0, 6)}…(${s.length} chars)`).join(', ');
      if (bits < 64 || seq) {
        out.findings.push({ id: 'identity.weak-session-id', severity: 'high', title: seq ? 'Session ids look sequential' : 'Session ids are short or low-entropy', control: control('I6'), evidence: `${ids.length} ids, at most ~${bits} bits each by alphabet and length${seq ? ', nearly identical to each other' : ''}: ${shown}`, fix: 'Generate session ids from a CSPRNG with at least 128 bits (e.g. crypto.randomUUID()).' });
      } else out.passed.push(`session ids look random (~${bits} bits each, ${ids.length} sampled)`);
      if (!facts.open && auth.authorization) {
        const sid = ids[0]!;
        await probe(url, { ...base, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), headers: { ...MCP_HEADERS, ...auth, 'mcp-session-id': sid, 'mcp-protocol-version': PROTOCOL_VERSION } });
        const r = await probe(url, { ...base, body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} }), headers: { ...MCP_HEADERS, 'mcp-session-id': sid, 'mcp-protocol-version': PROTOCOL_VERSION } });
        if (isResponse(r) && r.status === 200 && jsonOf(r)?.result !== undefined) {
          out.findings.push({ id: 'identity.session-as-credential', severity: 'critical', title: 'A session id alone grants access', control: control('I7'), evidence: `tools/list with mcp-session-id and no Authorization answered ${describe(r)}`, fix: 'Authenticate every request; bind sessions to the principal that created them (MCP security best practices: session hijacking).' });
        } else out.passed.push(`a session id without credentials is refused (${isResponse(r) ? r.status : describe(r)})`);
      }
      for (const sid of ids) await probe(url, { method: 'DELETE', headers: { ...auth, 'mcp-session-id': sid, 'mcp-protocol-version': PROTOCOL_VERSION }, timeoutMs, ca: opts.ca });
    }
  } else out.passed.push('session ids: not sampled (authentication required; scan with --token to sample them)');
  return { layer: out, facts };
}
