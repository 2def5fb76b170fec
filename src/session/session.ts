/**
 * One downstream MCP session and its upstream connection.
 *
 * Routing rules (the part a proxy most easily gets wrong):
 * - Client request ids are remapped to gateway ids upstream, so a client can never collide with
 *   the gateway's own requests (catalog fetches, initialize replay) or another stream's ids.
 * - A response is written to the HTTP exchange of the request it answers: as JSON when nothing
 *   else came first, or as the last event of an SSE stream that was opened when a related message
 *   (progress, log, sampling, elicitation) arrived before it.
 * - A server → client message is related to a client request when the transport says so (HTTP
 *   POST stream), when its progressToken names one, or when exactly one request is in flight;
 *   otherwise it goes to the standalone GET stream (buffered until the client opens it).
 * - Client answers to server requests are forwarded only for ids the upstream actually asked.
 */
import type { ServerResponse } from 'node:http';
import { BastionError, toWire } from '../errors.js';
import type { AuditLog } from '../audit/types.js';
import type { Logger } from '../logger.js';
import type { MessageContext, MountRuntime, RequestContext, RequestObservation, SessionView, ToolDefinition } from '../pipeline/context.js';
import type { Pipeline } from '../pipeline/compose.js';
import type { JsonRpcId, JsonRpcMessage, JsonRpcNotification, JsonRpcRequest, JsonRpcResponse } from '../pipeline/messages.js';
import { declaredLists, isRequest } from '../pipeline/messages.js';
import type { Principal } from '../identity/types.js';
import type { UpstreamCloseReason, UpstreamConnection, UpstreamHandlers } from '../upstream/connection.js';
import { performance } from 'node:perf_hooks';
import { toolCallEvent } from '../audit/request.js';
import { EventBuffer, parseEventId, SseStream } from './downstream-stream.js';
import { SUPPORTED_PROTOCOL_VERSIONS } from './protocol.js';

export interface RestartPolicy {
  initialDelayMs: number;
  maxDelayMs: number;
}

/** Per-mount crash bookkeeping shared by the sessions of a mount (stdio restart backoff). */
export class MountHealth {
  private failures = 0;
  private notBefore = 0;
  lastError: string | undefined;
  constructor(private readonly policy: RestartPolicy) {}
  private lastCrashAt = -Infinity;
  crashed(detail: string, now = Date.now()): void {
    // Several sessions of a shared child report the same crash: count it once.
    if (now - this.lastCrashAt < 250) return;
    this.lastCrashAt = now;
    this.lastError = detail;
    const delay = Math.min(this.policy.maxDelayMs, this.policy.initialDelayMs * 2 ** Math.min(this.failures, 20));
    this.failures++;
    this.notBefore = now + delay;
  }
  started(): void {
    this.failures = 0;
    this.lastError = undefined;
  }
  /** Milliseconds to wait before the next start. */
  wait(now = Date.now()): number {
    return Math.max(0, this.notBefore - now);
  }
  get healthy(): boolean {
    return this.failures === 0;
  }
}

interface Pending {
  uid: number;
  downstreamId: JsonRpcId;
  ctx: RequestContext;
  method: string;
  progressToken: unknown;
  res: ServerResponse | undefined;
  stream: SseStream | undefined;
  deadline: number;
  /** Internal (gateway's own) request: resolve instead of writing to a client. */
  internal?: { resolve: (r: JsonRpcResponse) => void };
  /** Its response has been written (or is being): later related messages go elsewhere. */
  answered?: boolean;
}

export interface SessionDeps {
  id: string;
  mount: MountRuntime;
  principal: Principal | undefined;
  owner: string | undefined;
  pipeline: Pipeline;
  health: MountHealth;
  /** Creates the upstream connection for this session. */
  connect: (handlers: UpstreamHandlers) => UpstreamConnection;
  audit: AuditLog;
  logger: Logger;
  eventBufferSize: number;
  requestTimeoutMs: number;
  onEnd: (session: Session, reason: string) => void;
  /**
   * A session created on another replica (shared registry): its handshake is replayed to a new
   * upstream connection on first use, as after a restart.
   */
  restored?: { initParams: Record<string, unknown>; protocolVersion: string; createdAt: number } | undefined;
  /** Metrics hook, called once per answered request. */
  observe?: ((o: RequestObservation) => void) | undefined;
  now?: () => number;
}

const HEADER = 'mcp-session-id';

export class Session implements SessionView {
  readonly id: string;
  readonly mount: string;
  readonly owner: string | undefined;
  readonly createdAt: number;
  protocolVersion: string | undefined;
  lastSeen: number;
  ended = false;

  private upstream: UpstreamConnection | undefined;
  private starting: Promise<UpstreamConnection> | undefined;
  private initParams: Record<string, unknown> | undefined;
  private initialized: Promise<void> | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly byDownstream = new Map<string, number>();
  private readonly serverRequests = new Set<string>();
  private readonly buffer: EventBuffer;
  private readonly streams = new Map<string, SseStream>();
  private standalone: SseStream | undefined;
  private streamCounter = 0;
  private catalog: Promise<ReadonlyMap<string, ToolDefinition>> | undefined;
  private readonly now: () => number;

  constructor(private readonly deps: SessionDeps) {
    this.id = deps.id;
    this.mount = deps.mount.name;
    this.owner = deps.owner;
    this.now = deps.now ?? Date.now;
    this.createdAt = deps.restored?.createdAt ?? this.now();
    this.lastSeen = this.now();
    this.buffer = new EventBuffer(deps.eventBufferSize);
    if (deps.restored) {
      this.initParams = deps.restored.initParams;
      this.protocolVersion = deps.restored.protocolVersion;
      this.initialized = Promise.resolve();
      this.clientInitialized = true;
    }
  }

  /** What another replica needs to serve this session (no secrets: the client's init params). */
  snapshot(): { mount: string; owner: string | undefined; initParams: Record<string, unknown>; protocolVersion: string; createdAt: number } | undefined {
    if (this.initParams === undefined || this.protocolVersion === undefined) return undefined;
    return { mount: this.mount, owner: this.owner, initParams: this.initParams, protocolVersion: this.protocolVersion, createdAt: this.createdAt };
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /* ------------------------------------------------------------------ upstream lifecycle */

  private handlers(): UpstreamHandlers {
    return {
      onMessage: (msg, relatedTo) => this.fromUpstream(msg, relatedTo),
      onClose: (reason) => this.upstreamClosed(reason),
    };
  }

  /** The live upstream, (re)starting it when needed: backoff, then replay of initialize. */
  private ensureUpstream(): Promise<UpstreamConnection> {
    if (this.upstream?.alive) return Promise.resolve(this.upstream);
    if (this.starting) return this.starting;
    this.starting = (async () => {
      const wait = this.deps.health.wait(this.now());
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const conn = this.deps.connect(this.handlers());
      this.upstream = conn;
      try {
        await conn.start();
      } catch (err) {
        this.deps.health.crashed((err as Error).message, this.now());
        throw new BastionError('ERR_BASTION_UPSTREAM_UNAVAILABLE', `Upstream server "${this.mount}" is unavailable`, {
          cause: err,
          reason: 'upstream_start_failed',
        });
      }
      if (this.initParams !== undefined && this.initialized !== undefined) {
        // A restart: replay the handshake the client made, so the new process serves this session.
        const r = await this.internalRequest(conn, 'initialize', this.initParams);
        if (r.error) throw new BastionError('ERR_BASTION_UPSTREAM_UNAVAILABLE', `Upstream server "${this.mount}" refused to re-initialize`, { reason: 'reinitialize_failed' });
        const v = (r.result as { protocolVersion?: unknown } | undefined)?.protocolVersion;
        if (typeof v === 'string') conn.setProtocolVersion(v);
        // A session restored from another replica learns here which lists its server offers.
        this.offeredLists ??= listsIn(r.result);
        await conn.send({ jsonrpc: '2.0', method: 'notifications/initialized' }, this.ownToken());
        await conn.afterInitialized();
        this.catalog = undefined;
        this.deps.logger.warn({ mount: this.mount, session: this.id }, 'upstream restarted and re-initialized');
      }
      this.deps.health.started();
      return conn;
    })().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private upstreamClosed(reason: UpstreamCloseReason): void {
    if (this.ended) return;
    this.deps.health.crashed(reason.detail, this.now());
    this.deps.logger.warn({ mount: this.mount, session: this.id, reason: reason.kind, detail: reason.detail }, 'upstream connection ended');
    this.deps.audit.emit({
      type: 'upstream.failed',
      outcome: 'failure',
      reason: reason.kind,
      mount: this.mount,
      sessionId: this.id,
      detail: reason.detail,
    });
    const code = reason.kind === 'protocol' ? 'ERR_BASTION_UPSTREAM_PROTOCOL' : 'ERR_BASTION_UPSTREAM_CRASHED';
    const message =
      reason.kind === 'protocol'
        ? `Upstream server "${this.mount}" broke the protocol and was stopped; the request did not complete`
        : `Upstream server "${this.mount}" stopped before answering; the request may not have completed`;
    for (const [uid, p] of [...this.pending]) {
      this.pending.delete(uid);
      this.failPending(p, new BastionError(code, message, { reason: reason.kind }));
    }
    this.serverRequests.clear();
    this.catalog = undefined;
    if (reason.kind === 'expired') {
      // The upstream forgot this session: so must we, so the client re-initializes.
      void this.close('upstream session expired');
    }
  }

  /* ------------------------------------------------------------------ client → upstream */

  /**
   * The session owner's latest verified access token, kept in memory only for upstream
   * credentials that exchange it (RFC 8693) on the gateway's own requests (catalog fetch,
   * handshake replay). Never forwarded as is, never logged.
   */
  private subjectToken: string | undefined;

  private tokenFor(ctx: RequestContext): { subjectToken: string | undefined } {
    const t = ctx.locals['identity.token'] as string | undefined;
    if (t !== undefined) this.subjectToken = t;
    return { subjectToken: t };
  }

  private ownToken(): { subjectToken: string | undefined } {
    return { subjectToken: this.subjectToken };
  }

  /** The client's initialize: start the upstream, forward, answer with the session header. */
  async initialize(ctx: RequestContext, msg: JsonRpcRequest, res: ServerResponse): Promise<void> {
    const conn = await this.ensureUpstream();
    const params = (msg.params ?? {}) as Record<string, unknown>;
    const uid = this.nextId++;
    const response = await new Promise<JsonRpcResponse>((resolve, reject) => {
      this.pending.set(uid, this.newPending(uid, msg.id, ctx, msg.method, undefined, undefined, { resolve }));
      conn.send({ ...msg, id: uid }, this.tokenFor(ctx)).catch((err) => {
        this.pending.delete(uid);
        reject(new BastionError('ERR_BASTION_UPSTREAM_UNAVAILABLE', `Upstream server "${this.mount}" is unavailable`, { cause: err }));
      });
    });
    if (response.result) {
      const v = (response.result as { protocolVersion?: unknown }).protocolVersion;
      if (typeof v !== 'string' || !SUPPORTED_PROTOCOL_VERSIONS.includes(v)) {
        throw new BastionError('ERR_BASTION_UPSTREAM_PROTOCOL', `Upstream server "${this.mount}" chose an unsupported protocol version`, {
          reason: 'upstream_protocol_version',
        });
      }
      this.protocolVersion = v;
      conn.setProtocolVersion(v);
      this.initParams = params;
      this.offeredLists = listsIn(response.result);
    }
    await this.respond(ctx, msg.id, msg.method, { ...response, id: msg.id }, res, undefined);
  }

  /** Forward a client request; the response is written when it arrives. */
  async request(ctx: RequestContext, msg: JsonRpcRequest, res: ServerResponse): Promise<void> {
    const key = idKey(msg.id);
    if (this.byDownstream.has(key)) {
      throw new BastionError('ERR_BASTION_TRANSPORT_INVALID_REQUEST', `Request id ${JSON.stringify(msg.id)} is already in use in this session`);
    }
    if (this.initialized) await this.initialized;
    const conn = await this.ensureUpstream();
    const uid = this.nextId++;
    const meta = msg.params?._meta as { progressToken?: unknown } | undefined;
    const p = this.newPending(uid, msg.id, ctx, msg.method, meta?.progressToken, res, undefined);
    this.pending.set(uid, p);
    this.byDownstream.set(key, uid);
    // A client that goes away is not a cancellation (spec): its response is then `destroyed`, and
    // every writer below checks that, so what follows stays buffered and resumable.
    try {
      await conn.send({ ...msg, id: uid }, this.tokenFor(ctx));
    } catch (err) {
      if (this.pending.delete(uid)) {
        this.byDownstream.delete(key);
        throw new BastionError('ERR_BASTION_UPSTREAM_UNAVAILABLE', `Upstream server "${this.mount}" is unavailable`, { cause: err });
      }
    }
  }

  /** Forward a client notification (cancellation ids are remapped). */
  async notify(ctx: RequestContext, msg: JsonRpcNotification): Promise<void> {
    let out: JsonRpcNotification = msg;
    if (msg.method === 'notifications/cancelled') {
      const rid = msg.params?.requestId;
      const uid = rid === undefined || rid === null ? undefined : this.byDownstream.get(idKey(rid as JsonRpcId));
      if (uid === undefined) return; // nothing of ours to cancel
      out = { ...msg, params: { ...msg.params, requestId: uid } };
      this.dropCancelled(uid);
    }
    if (msg.method === 'notifications/initialized') {
      const conn = await this.ensureUpstream();
      this.initialized = conn
        .send(out, this.tokenFor(ctx))
        .then(() => conn.afterInitialized())
        .catch((err: unknown) => {
          this.deps.logger.warn({ mount: this.mount, err: String(err) }, 'upstream initialized notification failed');
        });
      this.releaseAnnouncements();
      await this.initialized;
      return;
    }
    if (this.initialized) await this.initialized;
    if (msg.method !== 'notifications/cancelled') {
      const conn = await this.ensureUpstream();
      await conn.send(out, this.tokenFor(ctx));
      return;
    }
    // Cancellation is best effort: the gateway passed it on, so an upstream that does not accept
    // it (an HTTP upstream gives it up after its grace) is logged, and the client still gets 202.
    try {
      const conn = await this.ensureUpstream();
      await conn.send(out, this.tokenFor(ctx));
    } catch (err) {
      this.deps.logger.warn({ mount: this.mount, session: this.id, err: String(err) }, 'upstream did not accept a cancellation');
    }
  }

  /** The client's answer to a server → client request. Only ids the upstream asked are passed. */
  async answer(ctx: RequestContext, msg: JsonRpcResponse): Promise<void> {
    const key = msg.id === null ? '' : idKey(msg.id);
    if (!this.serverRequests.delete(key)) {
      throw new BastionError('ERR_BASTION_TRANSPORT_INVALID_REQUEST', 'This response answers no outstanding server request in this session');
    }
    const conn = await this.ensureUpstream();
    await conn.send(msg, this.tokenFor(ctx));
  }

  /** GET: the standalone stream, or the resumption of any stream by Last-Event-ID. */
  attachGet(res: ServerResponse, lastEventId: string | undefined): void {
    const parsed = lastEventId ? parseEventId(lastEventId) : undefined;
    if (parsed) {
      const live = this.streams.get(parsed.streamId);
      if (live) {
        live.attach(res, { [HEADER]: this.id }, parsed.seq);
        return;
      }
      if (this.standalone?.id === parsed.streamId) {
        this.standalone.attach(res, { [HEADER]: this.id }, parsed.seq);
        return;
      }
      // A finished POST stream: replay what it still has, then end it.
      const done = new SseStream(parsed.streamId, this.buffer);
      done.attach(res, { [HEADER]: this.id }, parsed.seq);
      done.end();
      return;
    }
    if (this.standalone?.attached) {
      throw new BastionError('ERR_BASTION_TRANSPORT_INVALID_REQUEST', 'Only one standalone SSE stream is allowed per session', { status: 409 });
    }
    // Replay what was sent while no GET stream was open.
    this.standaloneStream().attach(res, { [HEADER]: this.id }, 0);
  }

  /** The session's standalone stream, made on first use (messages wait in it for a GET). */
  private standaloneStream(): SseStream {
    if (!this.standalone) this.standalone = new SseStream(this.nextStreamId(), this.buffer);
    return this.standalone;
  }

  private nextStreamId(): string {
    return `s${++this.streamCounter}`;
  }

  /* ------------------------------------------------------------------ upstream → client */

  private fromUpstream(msg: JsonRpcMessage, relatedTo: JsonRpcId | undefined): void {
    if (this.ended) return;
    if (!('method' in msg)) {
      this.onUpstreamResponse(msg);
      return;
    }
    if (msg.method === 'notifications/tools/list_changed') this.catalog = undefined;
    const target = this.relate(msg, relatedTo);
    // Progress of a request no longer in flight (answered, cancelled, timed out) has no one to go to.
    if (target === undefined && msg.method === 'notifications/progress') return;
    if (isRequest(msg)) this.serverRequests.add(idKey(msg.id));
    this.inOrder(() => this.deliverServerMessage(msg, target));
  }

  /**
   * Upstream → client messages pass the response stages one at a time, in arrival order: a
   * progress or log notification sent before a result must reach the client before it (the
   * stages are async, so without this a slow scan could reorder them).
   */
  private outbound: Promise<void> = Promise.resolve();
  private inOrder(work: () => Promise<void>): void {
    this.outbound = this.outbound.then(work).catch((err: unknown) => {
      this.deps.logger.error({ mount: this.mount, err: String(err) }, 'error delivering an upstream message');
    });
  }

  private relate(msg: JsonRpcRequest | JsonRpcNotification, relatedTo: JsonRpcId | undefined): Pending | undefined {
    if (typeof relatedTo === 'number') {
      const p = this.pending.get(relatedTo);
      if (p && !p.internal) return p;
    }
    if (msg.method === 'notifications/progress') {
      // Progress belongs to the request that gave the token, or to none: never guessed below
      // (the request may be gone, e.g. cancelled, and another one alone in flight).
      const token = msg.params?.progressToken;
      for (const p of this.pending.values()) if (!p.internal && p.progressToken !== undefined && p.progressToken === token) return p;
      return undefined;
    }
    let only: Pending | undefined;
    let count = 0;
    for (const p of this.pending.values()) {
      if (p.internal) continue;
      count++;
      only = p;
    }
    if (count === 1) return only;
    return undefined;
  }

  private async deliverServerMessage(msg: JsonRpcRequest | JsonRpcNotification, target: Pending | undefined): Promise<void> {
    const mctx = this.messageContext(target?.ctx, msg.method);
    let out: JsonRpcMessage | null;
    try {
      out = await this.deps.pipeline.runUpstreamMessage(mctx, msg);
    } catch (err) {
      out = null;
      this.deps.logger.info({ mount: this.mount, method: msg.method, code: (err as BastionError).code }, 'server message withheld');
    }
    if (out === null) {
      if (isRequest(msg)) {
        // Do not leave the upstream waiting for an answer that will never come.
        this.serverRequests.delete(idKey(msg.id));
        void this.upstream?.send({ jsonrpc: '2.0', id: msg.id, error: { code: -32603, message: 'Request withheld by the gateway' } }, this.ownToken()).catch(() => {});
      }
      return;
    }
    const json = JSON.stringify(out);
    if (target && !target.internal && !target.answered) {
      this.streamFor(target).send(json);
      return;
    }
    this.standaloneStream().send(json);
  }

  /** Switch a pending JSON exchange to SSE (first related message), or return its stream. */
  private streamFor(p: Pending): SseStream {
    if (p.stream) return p.stream;
    const s = new SseStream(this.nextStreamId(), this.buffer);
    this.streams.set(s.id, s);
    p.stream = s;
    if (p.res && !p.res.headersSent && !p.res.destroyed) s.attach(p.res, { [HEADER]: this.id }, undefined);
    return s;
  }

  private onUpstreamResponse(msg: JsonRpcResponse): void {
    if (typeof msg.id !== 'number') return; // not one of ours: ids upstream are gateway numbers
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (p.internal) {
      p.internal.resolve(msg);
      return;
    }
    this.byDownstream.delete(idKey(p.downstreamId));
    // The upstream connection hands each parsed response to this session only: rewrite its id in place.
    msg.id = p.downstreamId;
    this.inOrder(() => this.respond(p.ctx, p.downstreamId, p.method, msg, p.res, p));
  }

  private async respond(
    ctx: RequestContext,
    downstreamId: JsonRpcId,
    method: string,
    msg: JsonRpcResponse,
    res: ServerResponse | undefined,
    p: Pending | undefined,
  ): Promise<void> {
    let out: JsonRpcMessage | null;
    try {
      out = await this.deps.pipeline.runUpstreamMessage(this.messageContext(ctx, method), msg);
    } catch (err) {
      out = toWire(err, downstreamId).body as JsonRpcResponse;
    }
    if (out === null) out = toWire(new BastionError('ERR_BASTION_SANITIZER_BLOCKED', 'The result was withheld by the gateway'), downstreamId).body as JsonRpcResponse;
    if (p) p.answered = true;
    const json = JSON.stringify(out);
    if (p?.stream) {
      p.stream.send(json);
      p.stream.end();
      this.streams.delete(p.stream.id);
    } else if (res && !res.headersSent && !res.destroyed) {
      res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': this.id, 'content-length': Buffer.byteLength(json) });
      res.end(json);
    }
    // On the record once the answer is on its way: the client does not wait for the bookkeeping.
    this.record(ctx, method, out as JsonRpcResponse);
  }

  /** One audit record per tools/call that reached the upstream, and a metrics observation per request. */
  private record(ctx: RequestContext, method: string, out: JsonRpcResponse): void {
    const failed = out.error !== undefined;
    if (method === 'tools/call') {
      const isError = !failed && (out.result as { isError?: unknown } | undefined)?.isError === true;
      const reason = failed ? (out.error!.code === -32603 && /did not answer/.test(out.error!.message) ? 'timeout' : 'upstream_error') : undefined;
      this.deps.audit.emit(
        toolCallEvent(ctx, {
          kind: 'completed',
          outcome: failed ? 'failure' : 'success',
          status: failed ? reason! : isError ? 'tool_error' : 'ok',
          ...(failed ? { error: String(out.error!.code) } : {}),
        }),
      );
    }
    this.observe(ctx, method, failed ? 'upstream_error' : undefined);
  }

  /** The metrics observation of a request that ended here: allowed, or an error with its reason. */
  private observe(ctx: RequestContext, method: string, errorReason: string | undefined): void {
    if (!this.deps.observe) return;
    const tool = method === 'tools/call' ? ((ctx.message as JsonRpcRequest).params?.name as string | undefined) : undefined;
    this.deps.observe({ mount: this.mount, method, tool, outcome: errorReason === undefined ? 'allowed' : 'error', reason: errorReason, durationMs: performance.now() - ctx.startedAt, stages: ctx.timings });
  }

  private failPending(p: Pending, err: BastionError): void {
    const body = toWire(err, p.downstreamId).body as JsonRpcResponse;
    p.answered = true;
    if (p.internal) {
      p.internal.resolve(body);
      return;
    }
    this.record(p.ctx, p.method, body);
    this.byDownstream.delete(idKey(p.downstreamId));
    const json = JSON.stringify(body);
    if (p.stream) {
      p.stream.send(json);
      p.stream.end();
      this.streams.delete(p.stream.id);
    } else if (p.res && !p.res.headersSent && !p.res.destroyed) {
      p.res.writeHead(200, { 'content-type': 'application/json', [HEADER]: this.id });
      p.res.end(json);
    }
  }

  /**
   * The client cancelled one of its requests: the gateway stops waiting for it (an answer that
   * still comes is dropped, as the spec asks of the canceller), closes its response without an
   * answer (an SSE stream ends; a POST still waiting for JSON gets an empty event stream), and
   * records the call as cancelled. Without this a cancelled call would hold its place until
   * requestTimeoutMs, and shutdown would wait for it.
   */
  private dropCancelled(uid: number): void {
    const p = this.pending.get(uid);
    if (p === undefined || p.internal) return;
    this.pending.delete(uid);
    this.byDownstream.delete(idKey(p.downstreamId));
    p.answered = true;
    if (p.stream) {
      p.stream.end();
      this.streams.delete(p.stream.id);
    } else if (p.res && !p.res.headersSent && !p.res.destroyed) {
      p.res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache, no-transform', 'mcp-session-id': this.id });
      p.res.end();
    }
    if (p.method === 'tools/call') {
      this.deps.audit.emit(toolCallEvent(p.ctx, { kind: 'completed', outcome: 'failure', status: 'cancelled', reason: 'client_cancelled' }));
    }
    this.observe(p.ctx, p.method, 'cancelled');
  }

  private messageContext(request: RequestContext | undefined, method: string | undefined): MessageContext {
    return { mount: this.deps.mount, session: this, principal: this.deps.principal, request, method };
  }

  private newPending(
    uid: number,
    downstreamId: JsonRpcId,
    ctx: RequestContext,
    method: string,
    progressToken: unknown,
    res: ServerResponse | undefined,
    internal: Pending['internal'],
  ): Pending {
    return { uid, downstreamId, ctx, method, progressToken, res, stream: undefined, deadline: this.now() + this.deps.requestTimeoutMs, internal };
  }

  /* ------------------------------------------------------------------ gateway's own requests */

  private internalRequest(conn: UpstreamConnection, method: string, params: Record<string, unknown>): Promise<JsonRpcResponse> {
    const uid = this.nextId++;
    return new Promise<JsonRpcResponse>((resolve, reject) => {
      this.pending.set(uid, {
        uid,
        downstreamId: uid,
        ctx: undefined as unknown as RequestContext,
        method,
        progressToken: undefined,
        res: undefined,
        stream: undefined,
        // A restarting process may take a while to answer its handshake (cold start under load).
        deadline: this.now() + (method === 'initialize' ? Math.max(this.deps.requestTimeoutMs, 60_000) : this.deps.requestTimeoutMs),
        internal: { resolve },
      });
      conn.send({ jsonrpc: '2.0', id: uid, method, params }, this.ownToken()).catch((err) => {
        this.pending.delete(uid);
        reject(err);
      });
    });
  }

  upstreamTools(): Promise<ReadonlyMap<string, ToolDefinition>> {
    if (!this.catalog) {
      const p = this.fetchTools();
      this.catalog = p;
      this.catalogValue = undefined;
      p.then(
        (tools) => {
          if (this.catalog === p) this.catalogValue = tools;
        },
        () => {
          if (this.catalog === p) this.catalog = undefined;
        },
      );
    }
    return this.catalog;
  }

  /** The resolved catalog while it is current (cleared with `catalog`). */
  private catalogValue: ReadonlyMap<string, ToolDefinition> | undefined;

  toolsNow(): ReadonlyMap<string, ToolDefinition> | undefined {
    return this.catalog === undefined ? undefined : this.catalogValue;
  }

  private async fetchTools(): Promise<ReadonlyMap<string, ToolDefinition>> {
    if (this.initialized) await this.initialized;
    const conn = await this.ensureUpstream();
    const tools = new Map<string, ToolDefinition>();
    let cursor: string | undefined;
    for (let page = 0; page < 100; page++) {
      const r = await this.internalRequest(conn, 'tools/list', cursor ? { cursor } : {});
      if (r.error || !r.result) {
        throw new BastionError('ERR_BASTION_UPSTREAM_PROTOCOL', `Upstream server "${this.mount}" could not list its tools`, { reason: 'tools_list_failed' });
      }
      const list = (r.result as { tools?: unknown }).tools;
      if (!Array.isArray(list)) throw new BastionError('ERR_BASTION_UPSTREAM_PROTOCOL', `Upstream server "${this.mount}" sent an invalid tools/list`);
      for (const t of list) {
        if (t && typeof t === 'object' && typeof (t as ToolDefinition).name === 'string') tools.set((t as ToolDefinition).name, t as ToolDefinition);
      }
      const next = (r.result as { nextCursor?: unknown }).nextCursor;
      if (typeof next !== 'string' || next === '') return tools;
      cursor = next;
    }
    throw new BastionError('ERR_BASTION_UPSTREAM_PROTOCOL', `Upstream server "${this.mount}" paginates tools/list without end`);
  }

  /* ------------------------------------------------------------------ housekeeping */

  /** Time out requests past their deadline; tell the upstream they are cancelled. */
  sweep(now: number): void {
    for (const [uid, p] of this.pending) {
      if (p.deadline > now) continue;
      this.pending.delete(uid);
      this.failPending(
        p,
        new BastionError('ERR_BASTION_UPSTREAM_TIMEOUT', `Upstream server "${this.mount}" did not answer within ${this.deps.requestTimeoutMs} ms; the request was cancelled`, {
          reason: 'timeout',
        }),
      );
      void this.upstream
        ?.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: uid, reason: 'gateway timeout' } }, this.ownToken())
        .catch(() => {});
    }
  }

  /** The lists (tools, prompts, resources) the initialize result declared; undefined until known. */
  private offeredLists: ReadonlySet<string> | undefined;
  /** The client's notifications/initialized has passed through (or the session was restored). */
  private clientInitialized = false;
  /** Announcements made before that, in order, one per method; delivered once it comes. */
  private readonly heldAnnouncements = new Set<string>();

  /**
   * A notification the gateway itself sends the client (no params), e.g. `notifications/tools/list_changed`
   * when an operator quarantines or releases a tool: on the standalone stream, kept for replay
   * when no GET stream is open. A list_changed is sent only for a list the client was told about
   * (its capability is in the initialize result); before the client's notifications/initialized
   * it is held (lifecycle: no other notifications before it), and dropped if the session ends first.
   */
  announce(method: string): void {
    if (this.ended) return;
    const list = /^notifications\/(tools|prompts|resources)\/list_changed$/.exec(method)?.[1];
    if (list !== undefined && this.offeredLists !== undefined && !this.offeredLists.has(list)) return;
    if (!this.clientInitialized) {
      this.heldAnnouncements.add(method);
      return;
    }
    this.standaloneStream().send(JSON.stringify({ jsonrpc: '2.0', method }));
  }

  private releaseAnnouncements(): void {
    this.clientInitialized = true;
    const held = [...this.heldAnnouncements];
    this.heldAnnouncements.clear();
    for (const method of held) this.announce(method);
  }

  async close(reason: string): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.heldAnnouncements.clear();
    for (const [uid, p] of [...this.pending]) {
      this.pending.delete(uid);
      this.failPending(p, new BastionError('ERR_BASTION_SESSION_UNKNOWN', 'The session ended before the request completed', { reason: 'session_ended' }));
    }
    for (const s of this.streams.values()) s.end();
    this.standalone?.end();
    this.deps.onEnd(this, reason);
    await this.upstream?.close();
  }
}

/** The lists whose capability an initialize result declares (as application.quarantine marks them listChanged). */
function listsIn(result: unknown): Set<string> {
  return new Set(declaredLists(result).keys());
}

function idKey(id: JsonRpcId): string {
  return typeof id === 'number' ? `n${id}` : `s${id}`;
}
