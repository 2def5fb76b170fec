/**
 * The gateway: a node:http(s) listener that serves MCP Streamable HTTP natively at /mcp/NAME for
 * every configured upstream, and the only file that knows the order of the stages.
 *
 * Request path:  transport → identity → authorization → application → upstream
 * Response path: application → authorization → identity → transport (reverse phase order)
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import tls, { type TLSSocket } from 'node:tls';
import { readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { BastionError, toWire, type JsonRpcId } from './errors.js';
import type { LoadedConfig } from './config/load.js';
import type { Config, ServerConfig } from './config/schema.js';
import { createLogger, type Logger } from './logger.js';
import type { AuditEvent, AuditLog } from './audit/types.js';
import type { StateStore } from './stores/types.js';
import { MemoryStateStore } from './stores/memory.js';
import { composePipeline, type Pipeline } from './pipeline/compose.js';
import type { HttpInfo, MountRuntime, RequestContext, RequestObservation, Stage } from './pipeline/context.js';
import { isRequest, isResponse, type JsonRpcMessage } from './pipeline/messages.js';
import { buildOriginPolicy, originStage } from './stages/transport/origin.js';
import { httpShapeStage } from './stages/transport/http-shape.js';
import { bodyStage } from './stages/transport/body.js';
import { sessionStage } from './stages/identity/session.js';
import { SessionRegistry, type SharedSessionRecord } from './session/registry.js';
import { MountHealth, Session } from './session/session.js';
import { principalKey } from './identity/types.js';
import { canonicalResource } from './identity/resource.js';
import { requestAuditBase, toolCallEvent } from './audit/request.js';
import { StdioUpstream } from './upstream/stdio.js';
import { HttpUpstream } from './upstream/http.js';
import { Http1Pool, secureContextWithCa } from './upstream/http1.js';
import { SharedStdioHub } from './upstream/shared-stdio.js';
import type { UpstreamConnection, UpstreamHandlers } from './upstream/connection.js';
import { buildChildSpawn } from './upstream/child-process.js';
import { createCredentials } from './upstream/credentials.js';
import { verifiedClientCertificate } from './tls/manager.js';

/** Session end reasons that must not end the session on other replicas. */
const SHUTDOWN = 'gateway shutting down';
const REPLICA_ENDED = 'ended on another replica';
const IDLE = 'idle timeout';
/** With a shared registry, these end only this replica's copy (the shared record expires by TTL). */
const LOCAL_ONLY_ENDS = new Set([SHUTDOWN, REPLICA_ENDED, IDLE]);

/** Largest single message accepted from an upstream (a line on stdio, a body or SSE event on HTTP). */
export const MAX_UPSTREAM_MESSAGE_BYTES = 16 * 1024 * 1024;

export interface GatewayOptions {
  logger?: Logger;
  store?: StateStore;
  audit?: AuditLog;
  /**
   * Builds the stages of the identity, authorization and application phases for the gateway.
   * The transport stages and `identity.session` are always present and placed by this file.
   */
  stages?: (env: StageEnv) => Stage[] | Promise<Stage[]>;
  /** HTTPS server options (TLS and mTLS); plain HTTP when absent. */
  tls?: https.ServerOptions;
  /** Extra response headers on every response (e.g. Strict-Transport-Security). */
  responseHeaders?: Record<string, string>;
  /** Called with the created server before it listens (TLS reload and client-cert policy). */
  onServer?: (server: http.Server | https.Server) => void;
  /** Request observations for metrics (called once per MCP request, off nothing: keep it cheap). */
  observe?: (o: RequestObservation) => void;
  /** Extra routes (e.g. protected resource metadata, /metrics): return true when handled. */
  routes?: (req: IncomingMessage, res: ServerResponse, path: string, env: StageEnv) => boolean | Promise<boolean>;
}

/** What stage factories get to build themselves. */
export interface StageEnv {
  config: Readonly<Config>;
  loaded: LoadedConfig;
  mounts: ReadonlyMap<string, MountRuntime>;
  publicUrl: string;
  store: StateStore;
  audit: AuditLog;
  logger: Logger;
}

export interface Gateway {
  /** Base URL the gateway listens on (its publicUrl). */
  readonly url: string;
  readonly port: number;
  readonly mounts: ReadonlyMap<string, MountRuntime>;
  readonly sessions: SessionRegistry;
  /** Stop accepting, let in-flight requests finish (up to the grace period), close upstreams. */
  close(): Promise<void>;
}

/** An audit log that writes through the logger: used until a real one is configured. */
function loggerAudit(logger: Logger): AuditLog {
  return {
    emit: (e: AuditEvent) => logger.info({ audit: e }, e.type),
    flush: async () => {},
    close: async () => {},
  };
}


export async function startGateway(loaded: LoadedConfig, options: GatewayOptions = {}): Promise<Gateway> {
  const { config } = loaded;
  const logger = options.logger ?? createLogger(config.log.level);
  const store = options.store ?? new MemoryStateStore();
  const audit = options.audit ?? loggerAudit(logger);
  const t = config.transport;

  const wildcard = ['0.0.0.0', '::', ''].includes(config.listen.host);
  if (wildcard && !config.publicUrl) {
    throw new BastionError(
      'ERR_BASTION_CONFIG_INVALID',
      `Invalid configuration${loaded.file ? ` in ${loaded.file}` : ''}:\n  publicUrl: required when listen.host is ${config.listen.host || '(all interfaces)'} (the Host check needs the name clients use, e.g. https://mcp.example.com)`,
    );
  }

  const registry = new SessionRegistry(t.maxSessions, store.shared ? { store, ttlMs: t.sessionIdleTimeoutMs } : undefined);
  const health = new Map<string, MountHealth>();
  const pools = new Map<string, { requests: Http1Pool; streams: Http1Pool }>();
  // Private CA bundles of https upstreams, read before anything listens.
  const upstreamCa = new Map<string, tls.SecureContext>();
  for (const [name, sc] of Object.entries(config.servers)) if (sc.http?.caFile !== undefined) upstreamCa.set(name, readCaFile(sc.http.caFile, `servers.${name}.http.caFile`));
  let pipeline: Pipeline | undefined;
  const mounts = new Map<string, MountRuntime>();
  let shuttingDown = false;
  let active = 0;

  const server = options.tls ? https.createServer(options.tls) : http.createServer();
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 0; // SSE GET streams are long-lived; idle sessions are swept instead
  options.onServer?.(server);

  const extraHeaders = options.responseHeaders ?? {};
  const hasExtraHeaders = Object.keys(extraHeaders).length > 0;

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (hasExtraHeaders) for (const [k, v] of Object.entries(extraHeaders)) res.setHeader(k, v);
    handle(req, res).catch((err: unknown) => {
      logger.error({ err: String(err) }, 'unhandled error in request handler');
      if (!res.headersSent) writeError(res, err, null);
      else res.destroy();
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.listen.port;
  const scheme = options.tls ? 'https' : 'http';
  const hostForUrl = wildcard ? '127.0.0.1' : config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host;
  const publicUrl = (config.publicUrl ?? `${scheme}://${hostForUrl}:${port}`).replace(/\/+$/, '');

  for (const [name, sc] of Object.entries(config.servers)) {
    mounts.set(name, Object.freeze({ name, config: sc, resource: canonicalResource(publicUrl, name) }));
    health.set(name, new MountHealth(sc.stdio?.restart ?? { initialDelayMs: 200, maxDelayMs: 30_000 }));
    if (sc.http) {
      const ca = upstreamCa.get(name);
      const host = Object.entries(sc.http.headers).find(([k]) => k.toLowerCase() === 'host')?.[1];
      const common = { url: new URL(sc.http.url), connectTimeoutMs: sc.http.connectTimeoutMs, ...(host !== undefined ? { hostHeader: host } : {}), ...(ca ? { tls: { secureContext: ca } } : {}) };
      // Requests and their answers get a pool of their own: the long-lived standalone GET streams
      // (one per session) must not take the sockets POSTs need.
      pools.set(name, {
        requests: new Http1Pool({ ...common, maxSockets: 256, maxFreeSockets: 64 }),
        streams: new Http1Pool({ ...common, maxSockets: t.maxSessions + 64, maxFreeSockets: 8 }),
      });
    }
  }
  const env: StageEnv = { config, loaded, mounts, publicUrl, store, audit, logger };

  try {
    const originPolicy = buildOriginPolicy({
      publicUrl,
      listenHost: config.listen.host,
      port,
      allowedOrigins: t.allowedOrigins,
      allowedHosts: t.allowedHosts,
    });
    const layered = options.stages ? await options.stages(env) : [];
    pipeline = composePipeline([
      originStage(originPolicy),
      httpShapeStage({ maxBodyBytes: t.maxBodyBytes }),
      bodyStage({ maxBodyBytes: t.maxBodyBytes }),
      ...layered,
      sessionStage(registry, (ctx, id, rec) => {
        const s = newSession(ctx, id, rec);
        registry.adopt(s);
        return s;
      }),
    ]);
  } catch (err) {
    server.close();
    throw err;
  }

  await registry.start((id) => {
    const s = registry.get(id);
    if (s) void s.close(REPLICA_ENDED);
  });

  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const s of registry.all()) {
      s.sweep(now);
      if (s.inFlight === 0 && now - s.lastSeen > t.sessionIdleTimeoutMs) void s.close(IDLE);
    }
  }, 1000);
  sweeper.unref();

  function connectorFor(mount: MountRuntime): (h: UpstreamHandlers) => UpstreamConnection {
    const sc: ServerConfig = mount.config;
    if (sc.stdio) {
      const spec = buildChildSpawn(sc.stdio, { gatewayEnv: process.env, baseDir: loaded.baseDir, server: mount.name });
      for (const w of spec.warnings) logger.warn({ mount: mount.name }, w);
      if (sc.stdio.shared) {
        const hub = new SharedStdioHub({
          spec,
          maxMessageBytes: MAX_UPSTREAM_MESSAGE_BYTES,
          onStderr: (line) => logger.debug({ mount: mount.name, stderr: line }, 'upstream stderr'),
        });
        hubs.push(hub);
        return (handlers) => hub.connect(handlers);
      }
      return (handlers) =>
        new StdioUpstream({
          spec,
          handlers,
          maxMessageBytes: MAX_UPSTREAM_MESSAGE_BYTES,
          onStderr: (line) => logger.debug({ mount: mount.name, stderr: line }, 'upstream stderr'),
        });
    }
    const h = sc.http!;
    const pool = pools.get(mount.name)!;
    const creds = createCredentials(h.credentials, { baseDir: loaded.baseDir, upstreamUrl: h.url, server: mount.name });
    const credentials = h.credentials ? (o: { subjectToken?: string | undefined }) => creds.headers(o.subjectToken ? { subjectToken: o.subjectToken } : {}) : undefined;
    return (handlers) =>
      new HttpUpstream({
        url: h.url,
        handlers,
        pool: pool.requests,
        streamPool: pool.streams,
        headers: h.headers,
        credentials,
        maxMessageBytes: MAX_UPSTREAM_MESSAGE_BYTES,
        acceptTimeoutMs: h.acceptTimeoutMs,
        onGetStreamFailed: (f) =>
          f.retryInMs === undefined
            ? logger.error(
                { mount: mount.name, reason: f.reason, failures: f.failures },
                'upstream GET stream given up: this session goes on without server-to-client messages (sampling, elicitation, list changes) from the upstream',
              )
            : logger.warn({ mount: mount.name, reason: f.reason, failures: f.failures, retryInMs: f.retryInMs }, 'upstream GET stream failed; trying again'),
      });
  }
  const hubs: SharedStdioHub[] = [];
  const connectors = new Map<string, (h: UpstreamHandlers) => UpstreamConnection>();
  for (const m of mounts.values()) connectors.set(m.name, connectorFor(m));

  /**
   * An upstream's private CA bundle, added to the default trust store (system roots and
   * NODE_EXTRA_CA_CERTS stay trusted): read at start-up; a bad file stops the gateway naming the key.
   */
  function readCaFile(file: string, key: string): tls.SecureContext {
    const path = resolvePath(loaded.baseDir, file);
    let pem: string;
    try {
      pem = readFileSync(path, 'utf8');
    } catch (err) {
      throw new BastionError('ERR_BASTION_CONFIG_INVALID', `Invalid configuration${loaded.file ? ` in ${loaded.file}` : ''}:\n  ${key}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    try {
      return secureContextWithCa(pem);
    } catch (err) {
      throw new BastionError('ERR_BASTION_CONFIG_INVALID', `Invalid configuration${loaded.file ? ` in ${loaded.file}` : ''}:\n  ${key}: ${path} holds ${(err as Error).message}`);
    }
  }

  function writeError(res: ServerResponse, err: unknown, id: JsonRpcId, session?: string): void {
    const wire = toWire(err, id);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = JSON.stringify(wire.body);
    const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...wire.headers };
    if (session) headers['mcp-session-id'] = session;
    res.writeHead(wire.status, headers);
    res.end(body);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);

    if (!path.startsWith('/mcp/')) {
      if (path === '/healthz') return json(res, 200, { status: shuttingDown ? 'draining' : 'ok' });
      if (path === '/readyz') {
        const down = [...health].filter(([, h]) => !h.healthy).map(([n, h]) => ({ server: n, error: h.lastError }));
        // The state store answers (Redis reachable): without it security checks answer 503 anyway.
        let stateOk = true;
        try {
          await store.get('bastion:readyz');
        } catch {
          stateOk = false;
        }
        const ok = !shuttingDown && down.length === 0 && stateOk;
        return json(res, ok ? 200 : 503, { status: ok ? 'ready' : 'not ready', sessions: registry.size, state: stateOk ? 'ok' : 'unavailable', unhealthy: down });
      }
      if (options.routes && (await options.routes(req, res, path, env))) return;
      return json(res, 404, { error: 'not_found', message: 'No such endpoint. MCP servers are mounted at /mcp/NAME.' });
    }
    const mount = mounts.get(path.slice(5));
    if (!mount) {
      return writeError(res, new BastionError('ERR_BASTION_TRANSPORT_NOT_FOUND', `No MCP server is mounted at ${path.slice(0, 80)}`), null);
    }
    if (shuttingDown || !pipeline) {
      return writeError(res, new BastionError('ERR_BASTION_TRANSPORT_SHUTTING_DOWN', 'The gateway is shutting down; retry on another instance', { headers: { 'retry-after': '1', connection: 'close' } }), null);
    }
    // POST and DELETE exchanges count as in flight until their response ends (drain waits for
    // them); GET streams are long-lived and are simply closed at shutdown.
    if (req.method !== 'GET') {
      active++;
      res.once('close', () => active--);
    }
    const ctx = newContext(req, mount, path, q < 0 ? '' : url.slice(q + 1));
    let id: JsonRpcId = null;
    try {
      await pipeline!.runRequest(ctx);
      applyStageHeaders(ctx, res);
      const msg = ctx.message;
      if (msg && isRequest(msg)) id = msg.id;
      await dispatch(ctx, msg, req, res);
    } catch (err) {
      if (!id && ctx.message && isRequest(ctx.message)) id = ctx.message.id;
      applyStageHeaders(ctx, res);
      reject(ctx, err);
      writeError(res, err, id, ctx.session?.id);
    }
  }

  /** Headers stages ask for on the response (e.g. a fresh DPoP-Nonce from identity). */
  function applyStageHeaders(ctx: RequestContext, res: ServerResponse): void {
    const idl = ctx.locals['identity.authenticate'] as { responseHeaders?: Record<string, string> } | undefined;
    if (idl?.responseHeaders && !res.headersSent) for (const [k, v] of Object.entries(idl.responseHeaders)) res.setHeader(k, v);
  }

  /**
   * Every refusal is on the record exactly once: stages that refuse (identity, policy, rate
   * limits, argument validation) audit their own decision and record a `deny` in ctx.decisions;
   * anything else refused here is audited now, as `tool.call.denied` for a tools/call and
   * `request.rejected` otherwise.
   */
  function reject(ctx: RequestContext, err: unknown): void {
    const e = err instanceof BastionError ? err : undefined;
    if (!e) logger.error({ err: String(err), mount: ctx.mount.name }, 'internal error while handling a request');
    const msg = ctx.message;
    const method = msg && 'method' in msg ? msg.method : ctx.http.method;
    const tool = method === 'tools/call' && msg && 'params' in msg ? (msg.params?.name as string | undefined) : undefined;
    options.observe?.({ mount: ctx.mount.name, method, tool: typeof tool === 'string' ? tool : undefined, outcome: e && e.status < 500 ? 'denied' : 'error', reason: e?.reason ?? 'internal', durationMs: performance.now() - ctx.startedAt, stages: ctx.timings });
    if (ctx.decisions.some((d) => d.outcome === 'deny')) return;
    if (method === 'tools/call') {
      audit.emit(toolCallEvent(ctx, { kind: 'denied', outcome: 'denied', reason: e?.reason ?? 'internal', error: e?.code ?? 'ERR_BASTION_INTERNAL' }));
      return;
    }
    audit.emit({
      type: 'request.rejected',
      outcome: 'denied',
      ...requestAuditBase(ctx),
      reason: e?.reason ?? 'internal',
      code: e?.code ?? 'ERR_BASTION_INTERNAL',
      status: e?.status ?? 500,
      method,
    });
  }

  async function dispatch(ctx: RequestContext, msg: JsonRpcMessage | undefined, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = ctx.http.method;
    if (method === 'GET') {
      const s = ctx.session as Session;
      const last = req.headers['last-event-id'];
      s.attachGet(res, typeof last === 'string' ? last : undefined);
      return;
    }
    if (method === 'DELETE') {
      const s = ctx.session as Session;
      await s.close('client ended the session');
      res.writeHead(200, { 'content-length': 0 });
      res.end();
      return;
    }
    if (!msg) throw new BastionError('ERR_BASTION_TRANSPORT_INVALID_REQUEST', 'Invalid Request: empty body');
    if (isRequest(msg)) {
      if (msg.method === 'initialize') {
        if (registry.size >= registry.max) {
          throw new BastionError('ERR_BASTION_SESSION_LIMIT', 'Too many sessions on this gateway; retry later', { headers: { 'retry-after': '5' } });
        }
        const session = newSession(ctx, SessionRegistry.newId(), undefined);
        ctx.session = session;
        try {
          await session.initialize(ctx, msg, res);
        } catch (err) {
          void session.close('initialize failed');
          throw err;
        }
        if (session.protocolVersion) {
          registry.add(session);
          audit.emit({
            type: 'session.created',
            outcome: 'success',
            requestId: ctx.requestId,
            sessionId: session.id,
            mount: ctx.mount.name,
            clientIp: ctx.http.remoteAddress,
            protocolVersion: session.protocolVersion,
          });
        } else {
          void session.close('initialize refused by upstream');
        }
        return;
      }
      await (ctx.session as Session).request(ctx, msg, res);
      return;
    }
    const s = ctx.session as Session;
    if (isResponse(msg)) await s.answer(ctx, msg);
    else await s.notify(ctx, msg);
    res.writeHead(202, { 'content-length': 0 });
    res.end();
  }

  function newSession(ctx: RequestContext, id: string, restored: SharedSessionRecord | undefined): Session {
    return new Session({
      id,
      mount: ctx.mount,
      principal: ctx.principal,
      owner: restored ? restored.owner : ctx.principal && ctx.principal.authMethod !== 'none' ? principalKey(ctx.principal) : undefined,
      pipeline: pipeline!,
      health: health.get(ctx.mount.name)!,
      connect: connectors.get(ctx.mount.name)!,
      audit,
      logger,
      eventBufferSize: t.eventBufferSize,
      requestTimeoutMs: ctx.mount.config.requestTimeoutMs,
      observe: options.observe,
      restored,
      onEnd: (s, reason) => {
        registry.remove(s, !LOCAL_ONLY_ENDS.has(reason));
        audit.emit({ type: 'session.ended', outcome: 'info', reason, sessionId: s.id, mount: s.mount });
      },
    });
  }

  function newContext(req: IncomingMessage, mount: MountRuntime, path: string, query: string): RequestContext {
    const sock = req.socket as TLSSocket;
    const secure = sock.encrypted === true;
    // Only a certificate the TLS layer verified against the configured CA counts.
    const peer: HttpInfo['peerCertificate'] = secure ? verifiedClientCertificate(sock) : undefined;
    const http: HttpInfo = {
      method: req.method ?? 'GET',
      path,
      query,
      headers: req.headers,
      remoteAddress: req.socket.remoteAddress ?? '',
      secure,
      peerCertificate: peer,
      readBody: (limit) => readBody(req, limit),
    };
    return {
      requestId: randomUUID(),
      startedAt: performance.now(),
      mount,
      http,
      session: undefined,
      message: undefined,
      principal: undefined,
      decisions: [],
      timings: {},
      locals: {},
    };
  }

  async function close(): Promise<void> {
    if (shuttingDown) return;
    shuttingDown = true;
    server.close();
    server.closeIdleConnections();
    const deadline = Date.now() + t.shutdownGraceMs;
    while ((active > 0 || registry.inFlight() > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    await Promise.all([...registry.all()].map((s) => s.close(SHUTDOWN)));
    await registry.stop();
    clearInterval(sweeper);
    server.closeAllConnections();
    for (const p of pools.values()) {
      p.requests.close();
      p.streams.close();
    }
    await Promise.all(hubs.map((h) => h.close()));
    await audit.flush();
  }

  return {
    url: publicUrl,
    port,
    mounts,
    sessions: registry,
    close,
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const s = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s), 'cache-control': 'no-store' });
  res.end(s);
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > limit) {
        done = true;
        req.resume();
        reject(new BastionError('ERR_BASTION_TRANSPORT_BODY_TOO_LARGE', `Payload Too Large: the body exceeds ${limit} bytes (transport.maxBodyBytes)`, { reason: 'body_too_large' }));
        return;
      }
      chunks.push(c);
    });
    req.once('end', () => {
      if (done) return;
      done = true;
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    });
    req.once('error', (err) => {
      if (done) return;
      done = true;
      reject(new BastionError('ERR_BASTION_TRANSPORT_INVALID_REQUEST', 'The request body could not be read', { cause: err }));
    });
  });
}
