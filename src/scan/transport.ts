/**
 * Transport layer checks of an HTTP target: TLS versions, certificate, HSTS, plain HTTP,
 * Origin and Host validation, MCP-Protocol-Version validation.
 */
import { connect, type ConnectionOptions, type PeerCertificate, type SecureVersion } from 'node:tls';
import { isIP } from 'node:net';
import { isLoopbackHost as isLoopbackAddress } from '../config/loopback.js';
import { control } from './controls.js';
import { describe, header, initializeBody, isResponse, jsonOf, MCP_HEADERS, probe, PROTOCOL_VERSION, type ProbeResult } from './http.js';
import { emptyLayer, type LayerResult, type ScanServerOptions } from './types.js';

/** A loopback address, `localhost`, or a `*.localhost` name (RFC 6761: resolvers answer those with loopback). */
export function isLoopbackHost(host: string): boolean {
  return isLoopbackAddress(host) || host.replace(/\.$/, '').toLowerCase().endsWith('.localhost');
}

export function portOf(url: URL): number {
  return url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
}

function hostOf(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, '');
}

interface TlsAttempt {
  ok: boolean;
  code?: string;
  message?: string;
  authorized?: boolean;
  cert?: PeerCertificate;
  protocol?: string | null;
}

export function tlsAttempt(url: URL, o: Partial<ConnectionOptions>, timeoutMs: number): Promise<TlsAttempt> {
  const host = hostOf(url);
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: TlsAttempt): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const sock = connect({ host, port: portOf(url), ...(isIP(host) ? {} : { servername: host }), rejectUnauthorized: false, ...o });
    const timer = setTimeout(() => finish({ ok: false, code: 'ETIMEDOUT', message: 'timeout' }), timeoutMs);
    sock.on('secureConnect', () => finish({ ok: true, authorized: sock.authorized, cert: sock.getPeerCertificate(false), protocol: sock.getProtocol() }));
    sock.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, code: err.code, message: err.message }));
  });
}

const VERSIONS: ReadonlyArray<{ v: SecureVersion; label: string }> = [
  { v: 'TLSv1', label: 'TLS 1.0' },
  { v: 'TLSv1.1', label: 'TLS 1.1' },
  { v: 'TLSv1.2', label: 'TLS 1.2' },
  { v: 'TLSv1.3', label: 'TLS 1.3' },
];

/** Errors that mean this client could not even offer the version (not the server's refusal). */
const LOCAL_REFUSALS = new Set(['ERR_SSL_NO_PROTOCOLS_AVAILABLE', 'ERR_SSL_UNSUPPORTED_PROTOCOL', 'ERR_TLS_INVALID_PROTOCOL_VERSION']);

async function checkTls(url: URL, opts: ScanServerOptions, out: LayerResult): Promise<void> {
  const timeout = opts.timeoutMs ?? 10_000;
  const accepted: string[] = [];
  const untestable: string[] = [];
  for (const { v, label } of VERSIONS) {
    const legacy = v === 'TLSv1' || v === 'TLSv1.1';
    const r = await tlsAttempt(url, { minVersion: v, maxVersion: v, ...(legacy ? { ciphers: 'DEFAULT:@SECLEVEL=0' } : {}) }, timeout);
    if (r.ok) accepted.push(label);
    else if (r.code && LOCAL_REFUSALS.has(r.code) && /no protocols available/i.test(r.message ?? '')) untestable.push(label);
  }
  const legacy = accepted.filter((l) => l === 'TLS 1.0' || l === 'TLS 1.1');
  if (accepted.length === 0) {
    out.findings.push({ id: 'transport.tls-handshake', severity: 'high', title: 'No TLS handshake succeeded', control: control('T1'), evidence: `TLS 1.0–1.3 handshakes with ${url.host} all failed`, fix: 'Check that the URL points at an HTTPS listener with a certificate and key.' });
    return;
  }
  if (legacy.length > 0) {
    out.findings.push({ id: 'transport.tls-legacy', severity: 'high', title: `Legacy TLS accepted (${legacy.join(', ')})`, control: control('T2'), evidence: `handshakes succeeded with: ${accepted.join(', ')}`, fix: 'Set the minimum TLS version to 1.3 (mcp-bastion: tls.minVersion: TLSv1.3, the default); TLS 1.0/1.1 are deprecated (RFC 8996).' });
  } else if (accepted.includes('TLS 1.2')) {
    out.findings.push({ id: 'transport.tls12', severity: 'low', title: 'TLS 1.2 accepted', control: control('T2'), evidence: `handshakes succeeded with: ${accepted.join(', ')}`, fix: 'Accept TLS 1.3 only where every client supports it (mcp-bastion: tls.minVersion: TLSv1.3); keep TLS 1.2 only with AEAD ciphers.' });
  }
  if (!accepted.includes('TLS 1.3')) {
    out.findings.push({ id: 'transport.tls13-missing', severity: 'medium', title: 'TLS 1.3 not offered', control: control('T2'), evidence: `handshakes succeeded with: ${accepted.join(', ')}`, fix: 'Enable TLS 1.3 on the listener.' });
  }
  if (legacy.length === 0 && accepted.length > 0 && accepted.every((l) => l === 'TLS 1.3')) out.passed.push('TLS 1.3 only (1.0, 1.1 and 1.2 refused)');
  else if (legacy.length === 0) out.passed.push('TLS 1.0 and 1.1 refused');
  if (untestable.length > 0) out.passed.push(`(${untestable.join(', ')} could not be offered by this client's OpenSSL: not tested)`);
}

async function checkCertificate(url: URL, opts: ScanServerOptions, out: LayerResult): Promise<boolean> {
  const timeout = opts.timeoutMs ?? 10_000;
  const strict = await tlsAttempt(url, { rejectUnauthorized: true, ...(opts.ca ? { ca: opts.ca } : {}) }, timeout);
  const loose = await tlsAttempt(url, {}, timeout);
  const cert = loose.cert;
  const subject = cert?.subject ? Object.entries(cert.subject).map(([k, v]) => `${k}=${String(v)}`).join(', ') : '?';
  const where = cert ? `subject ${subject}; issuer ${cert.issuer ? Object.entries(cert.issuer).map(([k, v]) => `${k}=${String(v)}`).join(', ') : '?'}; valid until ${cert.valid_to}` : 'no certificate';
  let valid = strict.ok;
  if (!strict.ok) {
    const code = strict.code ?? 'unknown';
    const selfSigned = code === 'DEPTH_ZERO_SELF_SIGNED_CERT' || code === 'SELF_SIGNED_CERT_IN_CHAIN';
    const expired = code === 'CERT_HAS_EXPIRED';
    const hostname = code === 'ERR_TLS_CERT_ALTNAME_INVALID';
    const title = expired ? 'Certificate expired' : selfSigned ? 'Self-signed certificate' : hostname ? 'Certificate does not match the host name' : 'Certificate not trusted';
    out.findings.push({
      id: expired ? 'transport.cert-expired' : selfSigned ? 'transport.cert-self-signed' : hostname ? 'transport.cert-hostname' : 'transport.cert-untrusted',
      severity: 'high',
      title,
      control: control('T3'),
      evidence: `${code}: ${strict.message ?? ''} (${where})`,
      fix: hostname ? `Issue a certificate whose subjectAltName covers ${hostOf(url)}.` : 'Serve a certificate from a CA clients trust (with the full chain), renewed automatically; for a private CA, scan with --ca FILE.',
    });
    valid = false;
  } else out.passed.push(`certificate trusted and matches ${hostOf(url)} (${where})`);
  if (cert?.valid_to) {
    const days = Math.floor((Date.parse(cert.valid_to) - Date.now()) / 86_400_000);
    if (days >= 0 && days < 30) {
      out.findings.push({ id: 'transport.cert-expiring', severity: days < 7 ? 'high' : 'medium', title: `Certificate expires in ${days} day(s)`, control: control('T3'), evidence: where, fix: 'Renew the certificate (automate renewal, e.g. ACME); mcp-bastion reloads changed certificate files without a restart.' });
    }
  }
  return valid;
}

function hsts(first: ProbeResult, out: LayerResult): void {
  const v = header(first, 'strict-transport-security');
  if (!isResponse(first)) return;
  if (!v) {
    out.findings.push({ id: 'transport.hsts-missing', severity: 'medium', title: 'No Strict-Transport-Security header', control: control('T4'), evidence: `initialize answered ${first.status} without Strict-Transport-Security`, fix: 'Send Strict-Transport-Security: max-age=31536000; includeSubDomains on every HTTPS response (mcp-bastion: tls.hsts, on by default).' });
    return;
  }
  const m = /max-age\s*=\s*"?(\d+)/i.exec(v);
  const age = m ? Number(m[1]) : 0;
  if (age < 15_552_000) out.findings.push({ id: 'transport.hsts-short', severity: 'low', title: 'HSTS max-age shorter than 180 days', control: control('T4'), evidence: `Strict-Transport-Security: ${v}`, fix: 'Use max-age=31536000 (one year).' });
  else out.passed.push(`HSTS: ${v}`);
}

async function checkPlainHttp(url: URL, opts: ScanServerOptions, out: LayerResult): Promise<void> {
  const timeoutMs = Math.min(opts.timeoutMs ?? 10_000, 5_000);
  const samePort = new URL(url);
  samePort.protocol = 'http:';
  samePort.port = String(portOf(url));
  const a = await probe(samePort, { method: 'POST', headers: { ...MCP_HEADERS }, body: initializeBody(), timeoutMs });
  const candidates: Array<[URL, ProbeResult]> = [[samePort, a]];
  if (portOf(url) !== 80) {
    const p80 = new URL(samePort);
    p80.port = '80';
    candidates.push([p80, await probe(p80, { method: 'POST', headers: { ...MCP_HEADERS }, body: initializeBody(), timeoutMs })]);
  }
  let found = false;
  for (const [u, r] of candidates) {
    if (!isResponse(r)) continue;
    const loc = header(r, 'location') ?? '';
    if (r.status >= 300 && r.status < 400 && loc.startsWith('https:')) {
      out.passed.push(`${u.origin} redirects to HTTPS`);
      continue;
    }
    if (r.status === 400 && /https|tls|ssl/i.test(r.body)) continue; // a TLS port telling a plain client to use TLS
    found = true;
    out.findings.push({ id: 'transport.plain-http', severity: 'high', title: 'MCP endpoint reachable over plain HTTP', control: control('T1'), evidence: `POST ${u.href} answered ${describe(r)}`, fix: 'Do not serve MCP on plain HTTP; at most redirect port 80 to HTTPS (308).' });
  }
  if (!found) out.passed.push('plain HTTP not served');
}

async function checkOriginHostVersion(url: URL, opts: ScanServerOptions, out: LayerResult, auth: Record<string, string>, first: ProbeResult): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  if (!isResponse(first) || (first.status !== 200 && first.status !== 401)) {
    // Not an MCP endpoint answering initialize: a refusal of a foreign Origin/Host could not be told from it.
    out.passed.push(`Origin, Host and MCP-Protocol-Version checks: not tested (initialize answered ${describe(first)})`);
    return;
  }
  const base = { method: 'POST', body: initializeBody(), ca: opts.ca, timeoutMs };
  const origin = await probe(url, { ...base, headers: { ...MCP_HEADERS, ...auth, origin: 'http://evil.example' } });
  if (isResponse(origin) && origin.status === 403) out.passed.push('foreign Origin refused with 403');
  else if (isResponse(origin) && origin.status === 401 && !auth.authorization) out.passed.push('foreign Origin: 401 before any Origin check could be seen (scan with --token to test it)');
  else
    out.findings.push({
      id: 'transport.origin-not-validated',
      severity: isResponse(origin) && origin.status < 300 ? 'high' : 'medium',
      title: 'Foreign Origin not refused with 403',
      control: control('T5'),
      evidence: `initialize with Origin: http://evil.example answered ${describe(origin)}`,
      fix: 'Validate the Origin header on every request and answer 403 to origins not allowed (MCP transport spec); mcp-bastion does this (transport.allowedOrigins).',
    });

  const host = await probe(url, { ...base, headers: { ...MCP_HEADERS, ...auth, host: 'evil.example.com' } });
  if (isResponse(host) && host.status >= 400 && host.status < 500 && host.status !== 401) out.passed.push(`foreign Host header refused with ${host.status}`);
  else if (isResponse(host) && host.status === 401 && !auth.authorization) out.passed.push('foreign Host header: 401 (scan with --token to see whether Host is validated)');
  else
    out.findings.push({
      id: 'transport.host-not-validated',
      severity: isResponse(host) && host.status < 300 ? 'high' : 'medium',
      title: 'Foreign Host header accepted (DNS rebinding)',
      control: control('T6'),
      evidence: `initialize with Host: evil.example.com answered ${describe(host)}`,
      fix: 'Accept only the expected Host values (mcp-bastion: transport.allowedHosts and publicUrl); refuse others with 421 or 403.',
    });

  // A bad MCP-Protocol-Version on a request after initialize.
  const init = await probe(url, { ...base, headers: { ...MCP_HEADERS, ...auth } });
  if (!isResponse(init) || init.status !== 200) {
    out.passed.push(`MCP-Protocol-Version: not tested (initialize answered ${describe(init)})`);
    return;
  }
  const sid = header(init, 'mcp-session-id');
  const proto = String((jsonOf(init)?.result as Record<string, unknown> | undefined)?.protocolVersion ?? PROTOCOL_VERSION);
  const sh: Record<string, string> = sid ? { 'mcp-session-id': sid } : {};
  await probe(url, { ...base, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), headers: { ...MCP_HEADERS, ...auth, ...sh, 'mcp-protocol-version': proto } });
  const bad = await probe(url, { ...base, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }), headers: { ...MCP_HEADERS, ...auth, ...sh, 'mcp-protocol-version': '1999-01-01' } });
  // Close the sessions these probes opened (a polite scanner leaves nothing behind).
  for (const r of [origin, host, init]) {
    const id = header(r, 'mcp-session-id');
    if (id) await probe(url, { method: 'DELETE', headers: { ...auth, 'mcp-session-id': id, 'mcp-protocol-version': proto }, timeoutMs, ca: opts.ca });
  }
  if (isResponse(bad) && bad.status === 400) out.passed.push('unsupported MCP-Protocol-Version refused with 400');
  else
    out.findings.push({
      id: 'transport.protocol-version-not-validated',
      severity: 'low',
      title: 'Unsupported MCP-Protocol-Version not refused with 400',
      control: control('T7'),
      evidence: `ping with MCP-Protocol-Version: 1999-01-01 answered ${describe(bad)}`,
      fix: 'Answer 400 Bad Request to an invalid or unsupported MCP-Protocol-Version (MCP transport spec).',
    });
}

/** The transport checks. `auth` holds the Authorization header when a token may be sent. */
export async function checkTransport(url: URL, opts: ScanServerOptions, auth: Record<string, string>, first: ProbeResult): Promise<{ layer: LayerResult; certValid: boolean }> {
  const out = emptyLayer();
  let certValid = true;
  if (url.protocol === 'https:') {
    opts.onProgress?.('transport: TLS versions');
    await checkTls(url, opts, out);
    opts.onProgress?.('transport: certificate');
    certValid = await checkCertificate(url, opts, out);
    hsts(first, out);
    opts.onProgress?.('transport: plain HTTP');
    await checkPlainHttp(url, opts, out);
  } else {
    const loop = isLoopbackHost(url.hostname);
    out.findings.push({
      id: 'transport.no-tls',
      severity: loop ? 'medium' : 'critical',
      title: loop ? 'Served over plain HTTP (loopback only)' : 'Served over plain HTTP',
      control: control('T1'),
      evidence: `${url.href} is http:${loop ? ' (a loopback address: every local process and any page a browser opens can reach it)' : ''}`,
      fix: 'Serve MCP over HTTPS only (put mcp-bastion with tls.cert/tls.key in front of it).',
    });
  }
  opts.onProgress?.('transport: Origin, Host, MCP-Protocol-Version');
  await checkOriginHostVersion(url, opts, out, certValid ? auth : {}, first);
  return { layer: out, certValid };
}
