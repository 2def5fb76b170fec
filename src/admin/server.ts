/**
 * The admin API for incident containment, on its own listener (never the MCP one):
 *
 *   POST   /revoke        {token?|jti?|subject?|client?|cert?, issuer?, reason?, ttlSeconds?}
 *   GET    /revocations
 *   DELETE /revocations   {kind, value}            (undo a revocation)
 *   GET    /sessions                                (every replica's sessions)
 *   DELETE /sessions/ID                             (end one session, wherever it lives)
 *   DELETE /sessions?subject=S&client=C&issuer=I    (end a principal's sessions)
 *   POST   /quarantine    {server, tool?, reason?}
 *   POST   /release       {server, tool?}
 *   GET    /quarantine
 *   GET    /healthz
 *
 * Loopback by default. Beyond loopback the config requires `admin.token` (Bearer, compared in
 * constant time) or `admin.tls.clientCa` (mTLS: the TLS layer refuses clients without a
 * certificate from that CA). Every action is audited as an `incident.*` event and takes
 * effect on every replica through the state store's pub/sub.
 *
 * `POST /revoke` with a `token` stores only its SHA-256 and, when `admin.tokenRevocation` has an
 * endpoint for the token's issuer, also calls it (RFC 7009, best effort): the deny-list entry is
 * written whatever the authorization server answers.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { decodeJwt } from 'jose';
import type { AdminConfig } from '../config/state.js';
import type { AuditLog } from '../audit/types.js';
import type { Logger } from '../logger.js';
import { bearerCredential, resolveSecret, RotatingSecret, safeEqual, sha256b64url } from '../identity/util.js';
import { REVOCATION_KINDS, type Containment, type RevocationKind, type SessionSelector } from './../containment/containment.js';

export interface AdminServerDeps {
  config: AdminConfig;
  baseDir: string;
  containment: Containment;
  audit: AuditLog;
  logger: Logger;
  env?: NodeJS.ProcessEnv;
  /** How long `DELETE /sessions` waits for replicas to report (default 300 ms). */
  sessionAckMs?: number;
  fetch?: typeof fetch;
}

export interface AdminServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

const MAX_BODY = 64 * 1024;
const MAX_FIELD = 4096;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    message: string,
  ) {
    super(message);
  }
}

function str(v: unknown, field: string, max = MAX_FIELD): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.length === 0 || v.length > max) throw new HttpError(400, 'invalid_request', `${field} must be a non-empty string of at most ${max} characters`);
  return v;
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const ct = (req.headers['content-type'] ?? '').toLowerCase();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, 'body_too_large', `the request body exceeds ${MAX_BODY} bytes`);
    chunks.push(c as Buffer);
  }
  if (size === 0) return {};
  if (!ct.startsWith('application/json')) throw new HttpError(415, 'unsupported_media_type', 'send the body as application/json');
  let v: unknown;
  try {
    v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'invalid_request', 'the body is not valid JSON');
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new HttpError(400, 'invalid_request', 'the body must be a JSON object');
  return v as Record<string, unknown>;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const s = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s), 'cache-control': 'no-store' });
  res.end(s);
}

export async function startAdminServer(deps: AdminServerDeps): Promise<AdminServer> {
  const { config, containment, audit, logger } = deps;
  const doFetch = deps.fetch ?? fetch;
  // Rotatable: a token file is read again when it changes (see RotatingSecret).
  const adminToken = config.token
    ? new RotatingSecret(config.token, deps.baseDir, deps.env, {
        onChange: (event, detail) =>
          event === 'rotated' ? logger.info({ file: detail }, 'admin token file changed: the new token is in force') : logger.error({ err: detail }, 'admin token file unreadable: the admin API refuses every request until it is readable'),
      })
    : undefined;
  const revocationEndpoints = config.tokenRevocation.map((r) => ({ ...r, secret: resolveSecret(r.clientSecret, deps.baseDir, deps.env) }));

  let server: http.Server | https.Server;
  if (config.tls) {
    const read = (f: string): Buffer => readFileSync(resolve(deps.baseDir, f));
    server = https.createServer({
      cert: read(config.tls.cert),
      key: read(config.tls.key),
      ...(config.tls.clientCa ? { ca: read(config.tls.clientCa), requestCert: true, rejectUnauthorized: true } : {}),
      minVersion: 'TLSv1.2',
    });
  } else {
    server = http.createServer();
  }
  server.requestTimeout = 30_000;

  function authorized(req: IncomingMessage): boolean {
    if (adminToken === undefined) return true; // loopback or mTLS only (the config refuses anything else)
    const expected = adminToken.current();
    const token = bearerCredential(req.headers.authorization);
    return expected !== undefined && token !== undefined && safeEqual(token, expected);
  }

  function operator(req: IncomingMessage, body: Record<string, unknown>): string {
    const header = req.headers['x-bastion-operator'];
    const v = typeof body.by === 'string' ? body.by : typeof header === 'string' ? header : undefined;
    const cleaned = (v ?? 'admin-api').replace(/[^\w.@:+ -]/g, '').slice(0, 128);
    return cleaned || 'admin-api';
  }

  async function revokeAtAuthorizationServer(token: string, issuer: string | undefined): Promise<Record<string, unknown> | undefined> {
    const ep = revocationEndpoints.find((r) => r.issuer === issuer);
    if (!ep) return undefined;
    const ctl = AbortSignal.timeout(ep.timeoutMs);
    try {
      const r = await doFetch(ep.endpoint, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${encodeURIComponent(ep.clientId)}:${encodeURIComponent(ep.secret)}`).toString('base64')}`,
        },
        body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
        signal: ctl,
      });
      await r.arrayBuffer().catch(() => undefined);
      return { endpoint: ep.endpoint, status: r.status, ok: r.status === 200 };
    } catch (err) {
      return { endpoint: ep.endpoint, ok: false, error: (err as Error).name === 'TimeoutError' ? 'timeout' : 'unreachable' };
    }
  }

  async function revoke(req: IncomingMessage, body: Record<string, unknown>): Promise<unknown> {
    const given = (['token', ...REVOCATION_KINDS.filter((k) => k !== 'token')] as const).filter((k) => body[k] !== undefined && body[k] !== null);
    if (given.length !== 1) throw new HttpError(400, 'invalid_request', 'give exactly one of token, jti, subject, client, cert');
    const kind = given[0] as RevocationKind;
    const raw = str(body[kind], kind, kind === 'token' ? 16_384 : MAX_FIELD)!;
    const reason = str(body.reason, 'reason', 256);
    const by = operator(req, body);
    let expiresAt: number | undefined;
    if (body.ttlSeconds !== undefined) {
      if (typeof body.ttlSeconds !== 'number' || !Number.isInteger(body.ttlSeconds) || body.ttlSeconds <= 0) throw new HttpError(400, 'invalid_request', 'ttlSeconds must be a positive integer');
      expiresAt = Date.now() + body.ttlSeconds * 1000;
    }
    let value = raw;
    let as: Record<string, unknown> | undefined;
    if (kind === 'token') {
      value = sha256b64url(raw);
      let claims: { iss?: unknown; exp?: unknown } = {};
      try {
        claims = decodeJwt(raw);
      } catch {
        /* an opaque token: no issuer or expiry to read */
      }
      const issuer = str(body.issuer, 'issuer') ?? (typeof claims.iss === 'string' ? claims.iss : undefined);
      // Keep the entry until the token expires anyway (plus a margin for clock skew).
      if (expiresAt === undefined && typeof claims.exp === 'number') expiresAt = claims.exp * 1000 + 5 * 60_000;
      as = await revokeAtAuthorizationServer(raw, issuer);
    }
    const entry = await containment.revoke(kind, value, { by, reason, expiresAt });
    audit.emit({
      type: 'incident.token.revoked',
      outcome: 'success',
      ...(reason ? { reason } : {}),
      kind,
      tokenId: kind === 'jti' || kind === 'token' ? value : undefined,
      target: value,
      by,
      ...(as ? { authorizationServer: as } : {}),
    });
    let sessions: { ended: number; replicas: number } | undefined;
    if (kind === 'subject' || kind === 'client') {
      sessions = await containment.endSessions(kind === 'subject' ? { subject: value } : { client: value }, by, deps.sessionAckMs);
    }
    return { revoked: { kind, value, expiresAt: entry.expiresAt }, ...(as ? { authorizationServer: as } : {}), ...(sessions ? { sessions } : {}) };
  }

  async function endSessions(req: IncomingMessage, sel: SessionSelector): Promise<unknown> {
    if (sel.id === undefined && sel.subject === undefined && sel.client === undefined && sel.issuer === undefined) {
      throw new HttpError(400, 'invalid_request', 'say which sessions: DELETE /sessions/ID, or ?subject=…&client=…&issuer=…');
    }
    const by = operator(req, {});
    const r = await containment.endSessions(sel, by, deps.sessionAckMs);
    return r;
  }

  async function quarantine(req: IncomingMessage, body: Record<string, unknown>, release: boolean): Promise<unknown> {
    const srv = str(body.server, 'server', 64);
    if (!srv) throw new HttpError(400, 'invalid_request', 'server is required');
    const tool = str(body.tool, 'tool', 512);
    const by = operator(req, body);
    if (release) {
      const had = await containment.release(srv, tool);
      audit.emit({ type: 'incident.tool.released', outcome: 'success', mount: srv, tool: tool ?? '*', by });
      return { released: { server: srv, ...(tool !== undefined ? { tool } : {}) }, wasQuarantined: had };
    }
    const reason = str(body.reason, 'reason', 256);
    const e = await containment.quarantine(srv, tool, { by, reason });
    audit.emit({ type: 'incident.tool.quarantined', outcome: 'success', ...(reason ? { reason } : {}), mount: srv, tool: tool ?? '*', by });
    return { quarantined: e };
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (path === '/healthz' && method === 'GET') return send(res, 200, { status: 'ok', replica: containment.replicaId, stateTrusted: containment.trusted() });
    if (!authorized(req)) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="bastion-admin"');
      return send(res, 401, { error: 'unauthorized', message: 'admin token required: Authorization: Bearer TOKEN (see admin.token in the config)' });
    }
    const body = method === 'POST' || method === 'DELETE' ? await readJson(req) : {};
    if (path === '/revoke' && method === 'POST') return send(res, 200, await revoke(req, body));
    if (path === '/revocations' && method === 'GET') return send(res, 200, { revocations: await containment.listRevocations() });
    if (path === '/revocations' && method === 'DELETE') {
      const kind = str(body.kind, 'kind', 16) as RevocationKind | undefined;
      if (!kind || !REVOCATION_KINDS.includes(kind)) throw new HttpError(400, 'invalid_request', `kind must be one of ${REVOCATION_KINDS.join(', ')}`);
      const value = str(body.value, 'value')!;
      const had = await containment.unrevoke(kind, value);
      audit.emit({ type: 'incident.token.reinstated', outcome: 'success', subject: `${kind}:${value}`, by: operator(req, body) });
      return send(res, 200, { reinstated: had });
    }
    if (path === '/sessions' && method === 'GET') return send(res, 200, { sessions: await containment.allSessions() });
    if (path === '/sessions' && method === 'DELETE') {
      const q = url.searchParams;
      const sel: SessionSelector = {};
      for (const f of ['subject', 'client', 'issuer', 'id'] as const) {
        const v = q.get(f) ?? (typeof body[f] === 'string' ? (body[f] as string) : undefined);
        if (v !== undefined && v !== null) sel[f] = str(v, f);
      }
      return send(res, 200, await endSessions(req, sel));
    }
    if (path.startsWith('/sessions/') && method === 'DELETE') {
      const id = decodeURIComponent(path.slice('/sessions/'.length));
      return send(res, 200, await endSessions(req, { id: str(id, 'session id', 256)! }));
    }
    if (path === '/quarantine' && method === 'POST') return send(res, 200, await quarantine(req, body, false));
    if (path === '/release' && method === 'POST') return send(res, 200, await quarantine(req, body, true));
    if (path === '/quarantine' && method === 'GET') return send(res, 200, { quarantine: await containment.listQuarantine() });
    return send(res, 404, { error: 'not_found', message: `no admin endpoint ${method} ${path.slice(0, 100)}` });
  }

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    route(req, res).catch((err: unknown) => {
      if (err instanceof HttpError) return send(res, err.status, { error: err.error, message: err.message });
      const e = err as { code?: string; message?: string; status?: number };
      if (e.code === 'ERR_BASTION_STATE_UNAVAILABLE') return send(res, 503, { error: 'state_unavailable', message: 'the state store is unreachable: nothing was changed; retry when it is back' });
      logger.error({ err: String(err) }, 'admin API: internal error');
      if (!res.headersSent) send(res, 500, { error: 'internal', message: 'internal error (see the gateway log)' });
    });
  });

  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => {
      server.off('error', reject);
      resolveListen();
    });
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.listen.port;
  const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host;
  const url = `${config.tls ? 'https' : 'http'}://${host}:${port}`;
  logger.info({ url }, 'admin API listening');
  return {
    url,
    port,
    async close() {
      server.close();
      server.closeAllConnections();
    },
  };
}
