/** Shared fixtures for the development authorization server tests (not a test file). */
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpsRequestRaw } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import type {
  OAuthClientInformationMixed,
  OAuthClientMetadata,
  OAuthTokens,
} from '@modelcontextprotocol/sdk/shared/auth.js';
import { followAuthorizationRedirects } from '../../src/authserver/headless.js';

export async function tempDir(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * A stand-in MCP resource server: only its RFC 9728 metadata, naming the authorization server.
 * Mounts are `/mcp/<name>`; `issuer` is set once the authorization server is up.
 */
export async function startResourceMetadataServer(mounts: Record<string, string[]>): Promise<{
  origin: string;
  url(name: string): string;
  setIssuer(issuer: string): void;
  close(): Promise<void>;
}> {
  let issuer = '';
  let origin = '';
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const m = /^\/\.well-known\/oauth-protected-resource\/mcp\/([a-z0-9-]+)$/.exec(path);
    const scopes = m ? mounts[m[1]!] : undefined;
    if (!m || !scopes) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ resource: `${origin}/mcp/${m[1]}`, authorization_servers: [issuer], scopes_supported: scopes }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    url: (name) => `${origin}/mcp/${name}`,
    setIssuer: (i) => {
      issuer = i;
    },
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/**
 * An OAuthClientProvider for the MCP SDK that "opens the browser" by following the
 * authorization server's redirects with fetch (the dev server's auto-login answers them).
 */
export class HeadlessOAuthProvider implements OAuthClientProvider {
  clientInfo: OAuthClientInformationMixed | undefined;
  savedTokens: OAuthTokens | undefined;
  verifier = '';
  /** Where the authorization server finally redirected (with code or error). */
  callback: URL | undefined;
  authorizationUrls: URL[] = [];
  readonly clientMetadataUrl?: string;

  constructor(
    readonly redirectUrl: string,
    readonly clientMetadata: OAuthClientMetadata,
    options: { clientMetadataUrl?: string } = {},
  ) {
    if (options.clientMetadataUrl) this.clientMetadataUrl = options.clientMetadataUrl;
  }

  clientInformation(): OAuthClientInformationMixed | undefined {
    return this.clientInfo;
  }
  saveClientInformation(info: OAuthClientInformationMixed): void {
    this.clientInfo = info;
  }
  tokens(): OAuthTokens | undefined {
    return this.savedTokens;
  }
  saveTokens(tokens: OAuthTokens): void {
    this.savedTokens = tokens;
  }
  async redirectToAuthorization(url: URL): Promise<void> {
    this.authorizationUrls.push(url);
    this.callback = await followAuthorizationRedirects(url, this.redirectUrl);
  }
  saveCodeVerifier(v: string): void {
    this.verifier = v;
  }
  codeVerifier(): string {
    return this.verifier;
  }
  /** The code from the last redirect; fails loudly with the error the server sent instead. */
  code(): string {
    const err = this.callback?.searchParams.get('error');
    if (err) throw new Error(`authorization error: ${err} ${this.callback?.searchParams.get('error_description') ?? ''}`);
    const code = this.callback?.searchParams.get('code');
    if (!code) throw new Error('no authorization code');
    return code;
  }
}

export async function postForm(
  url: string,
  form: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form),
  });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { status: res.status, body, headers: res.headers };
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'ignore' });
}

/** CA, server cert for 127.0.0.1, a client cert from the CA, and one from a stranger CA. */
export function makeCerts(dir: string): void {
  const ext = join(dir, 'san.cnf');
  writeFileSync(ext, 'subjectAltName=IP:127.0.0.1\n');
  for (const ca of ['ca', 'rogue-ca']) {
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '2', '-subj', `/CN=${ca}`], dir);
  }
  const leaf = (name: string, subj: string, ca: string, extfile?: string) => {
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj], dir);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', ...(extfile ? ['-extfile', extfile] : [])], dir);
  };
  leaf('server', '/CN=127.0.0.1', 'ca', ext);
  leaf('bot', '/O=Example/CN=billing-bot', 'ca');
  leaf('bot2', '/O=Example/CN=other-bot', 'ca');
  leaf('rogue', '/O=Example/CN=billing-bot', 'rogue-ca');
}


/** One HTTPS request with optional client certificate; the body as text. */
export function httpsRequest(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string; ca: Buffer; cert?: Buffer; key?: Buffer },
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequestRaw(
      url,
      {
        method: opts.method ?? 'GET',
        headers: { ...(opts.body !== undefined ? { 'content-length': String(Buffer.byteLength(opts.body)) } : {}), ...opts.headers },
        ca: opts.ca,
        ...(opts.cert ? { cert: opts.cert, key: opts.key } : {}),
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}
