/**
 * Test fixtures for the identity layer: a real authorization-server stand-in on 127.0.0.1
 * (JWKS, RFC 8414 metadata, RFC 7662 introspection), token minting with jose, configs, and
 * hand-built RequestContexts.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { PeerCertificate } from 'node:tls';
import { X509Certificate, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { parseConfig } from '../../src/config/load.js';
import type { Config, ConfigInput } from '../../src/config/schema.js';
import { canonicalResource } from '../../src/identity/resource.js';
import type { HttpInfo, RequestContext } from '../../src/pipeline/context.js';
import type { AuditEvent, AuditLog } from '../../src/audit/types.js';

export const PUBLIC_URL = 'https://gw.example.com';
export const RESOURCE = canonicalResource(PUBLIC_URL, 'files');
export const OTHER_RESOURCE = canonicalResource(PUBLIC_URL, 'other');

export interface KeyPair {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
  kid: string;
}

export async function makeKey(alg = 'ES256', kid: string = randomUUID()): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { privateKey, publicKey, publicJwk, kid };
}

export interface TestIssuer {
  url: string;
  jwksUri: string;
  introspectionEndpoint: string;
  key: KeyPair;
  /** Keys served in the JWKS (mutable). */
  jwks: JWK[];
  /** Introspection answers by token. Unknown tokens get {active:false}. */
  introspection: Map<string, Record<string, unknown>>;
  counts: { jwks: number; introspect: number; metadata: number };
  /** Client credentials expected at the introspection endpoint. */
  clientId: string;
  clientSecret: string;
  /** When true, every endpoint answers 500. */
  down: boolean;
  mint(claims?: JWTPayload, opts?: MintOptions): Promise<string>;
  close(): Promise<void>;
}

export interface MintOptions {
  key?: KeyPair;
  alg?: string;
  typ?: string | null;
  header?: Record<string, unknown>;
  /** Seconds since epoch used for iat/exp defaults. */
  now?: number;
  omit?: string[];
}

async function body(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startIssuer(): Promise<TestIssuer> {
  const key = await makeKey('ES256', 'key-1');
  let url = '';
  const state: TestIssuer = {
    url: '',
    jwksUri: '',
    introspectionEndpoint: '',
    key,
    jwks: [key.publicJwk],
    introspection: new Map(),
    counts: { jwks: 0, introspect: 0, metadata: 0 },
    clientId: 'gateway',
    clientSecret: 's3cret-for-tests',
    down: false,
    async mint(claims = {}, opts = {}) {
      const k = opts.key ?? key;
      const now = opts.now ?? Math.floor(Date.now() / 1000);
      const payload: JWTPayload = {
        iss: url,
        aud: RESOURCE,
        sub: 'user-1',
        client_id: 'client-a',
        scope: 'mcp:read',
        iat: now,
        exp: now + 300,
        jti: randomUUID(),
        ...claims,
      };
      for (const o of opts.omit ?? []) delete payload[o];
      const header: Record<string, unknown> = { alg: opts.alg ?? 'ES256', kid: k.kid, ...(opts.header ?? {}) };
      if (opts.typ !== null) header['typ'] = opts.typ ?? 'at+jwt';
      return new SignJWT(payload).setProtectedHeader(header as { alg: string }).sign(k.privateKey);
    },
    async close() {
      server.closeAllConnections();
      server.close();
    },
  };
  const server: Server = createServer((req, res) => {
    void (async () => {
      const path = (req.url ?? '').split('?')[0];
      if (state.down) {
        res.writeHead(500).end();
        return;
      }
      if (path === '/jwks') {
        state.counts.jwks++;
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: state.jwks }));
        return;
      }
      if (path === '/.well-known/oauth-authorization-server') {
        state.counts.metadata++;
        res.writeHead(200, { 'content-type': 'application/json' }).end(
          JSON.stringify({ issuer: url, jwks_uri: `${url}/jwks`, introspection_endpoint: `${url}/introspect` }),
        );
        return;
      }
      if (path === '/introspect' && req.method === 'POST') {
        state.counts.introspect++;
        const expected = `Basic ${Buffer.from(`${state.clientId}:${state.clientSecret}`).toString('base64')}`;
        if (req.headers.authorization !== expected) {
          res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"invalid_client"}');
          return;
        }
        const form = new URLSearchParams(await body(req));
        const answer = state.introspection.get(form.get('token') ?? '') ?? { active: false };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
        return;
      }
      res.writeHead(404).end();
    })();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  url = `http://127.0.0.1:${port}`;
  state.url = url;
  state.jwksUri = `${url}/jwks`;
  state.introspectionEndpoint = `${url}/introspect`;
  return state;
}

/** Raw config input, loosely typed so tests can patch any field (it is validated by parseConfig). */
export type RawConfig = Record<string, any>;

/** A config with mounts `files` and `other`, trusting `issuer` by its JWKS URL. */
export function makeConfig(issuer: TestIssuer | undefined, patch: (c: RawConfig) => void = () => {}): Config {
  const input: RawConfig = {
    publicUrl: PUBLIC_URL,
    servers: {
      files: { stdio: { command: 'node' }, auth: { scopes: ['mcp:read'] } },
      other: { stdio: { command: 'node' }, auth: {} },
    },
    auth: {
      issuers: issuer
        ? [
            {
              issuer: issuer.url,
              jwksUri: issuer.jwksUri,
              introspection: { endpoint: issuer.introspectionEndpoint, clientId: issuer.clientId, clientSecret: { env: 'TEST_INTROSPECTION_SECRET' } },
            },
          ]
        : [],
      jwks: { cooldownSeconds: 0 },
    },
  };
  patch(input);
  return parseConfig(input as ConfigInput, '(test)', process.cwd(), { ...process.env, TEST_INTROSPECTION_SECRET: issuer?.clientSecret ?? 'x' }).config as Config;
}

export interface CtxOptions {
  mount?: string;
  method?: string;
  path?: string;
  query?: string;
  headers?: Record<string, string>;
  peerCertificate?: PeerCertificate;
  secure?: boolean;
}

export function makeCtx(config: Config, opts: CtxOptions = {}): RequestContext {
  const name = opts.mount ?? 'files';
  return {
    requestId: randomUUID(),
    startedAt: 0,
    mount: { name, config: config.servers[name]!, resource: canonicalResource(config.publicUrl ?? PUBLIC_URL, name) },
    http: {
      method: opts.method ?? 'POST',
      path: opts.path ?? `/mcp/${name}`,
      query: opts.query ?? '',
      headers: { ...(opts.headers ?? {}) },
      remoteAddress: '127.0.0.1',
      secure: opts.secure ?? true,
      peerCertificate: opts.peerCertificate,
      readBody: async () => Buffer.alloc(0),
    } as HttpInfo,
    session: undefined,
    message: undefined,
    principal: undefined,
    decisions: [],
    timings: {},
    locals: {},
  };
}

/** A PeerCertificate as Node gives it for a verified client (only `raw` is read). */
export function peerFromPem(file: string): PeerCertificate {
  const x = new X509Certificate(readFileSync(file));
  return { raw: x.raw } as unknown as PeerCertificate;
}

export function memoryAudit(): AuditLog & { events: AuditEvent[] } {
  const events: AuditEvent[] = [];
  return {
    events,
    emit(e) {
      events.push(e);
    },
    async flush() {},
    async close() {},
  };
}
