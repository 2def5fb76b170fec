/**
 * One stdio child shared by every session of a mount (`servers.NAME.stdio.shared: true`).
 *
 * Each session gets a virtual connection; the hub remaps request ids and progress tokens to
 * process-wide values so sessions cannot collide or see each other's answers. The child's
 * initialize result is cached and replayed to later sessions (the upstream saw the first client's
 * capabilities). Messages the upstream sends on its own are routed only where they can be
 * attributed: list_changed notifications go to every session; a log message, a progress
 * notification or a server request goes to the one session with requests in flight, and is
 * dropped (a request: answered with an error) when that is ambiguous, so nothing leaks between
 * sessions. A crash ends every virtual connection; the next request starts a new child.
 *
 * Use it for upstreams that keep no per-client state; the default is one child per session.
 */
import type { JsonRpcId, JsonRpcMessage, JsonRpcNotification, JsonRpcRequest, JsonRpcResponse } from '../pipeline/messages.js';
import { isRequest } from '../pipeline/messages.js';
import type { UpstreamCloseReason, UpstreamConnection, UpstreamHandlers } from './connection.js';
import { StdioUpstream, type StdioSpawnSpec } from './stdio.js';

interface Route {
  conn: VirtualStdioConnection;
  localId: JsonRpcId;
  /** The progress token the child was given for this request, forgotten with the route. */
  progressToken?: string;
}

export class SharedStdioHub {
  private child: StdioUpstream | undefined;
  private starting: Promise<StdioUpstream> | undefined;
  private nextId = 1;
  private nextToken = 1;
  private readonly routes = new Map<number, Route>();
  private readonly tokens = new Map<string, { conn: VirtualStdioConnection; token: unknown }>();
  private readonly serverRequests = new Map<string, VirtualStdioConnection>();
  private readonly conns = new Set<VirtualStdioConnection>();
  private initResult: Record<string, unknown> | undefined;
  private initialized = false;

  constructor(private readonly opts: { spec: StdioSpawnSpec; maxMessageBytes: number; onStderr?: (line: string) => void }) {}

  connect(handlers: UpstreamHandlers): VirtualStdioConnection {
    const c = new VirtualStdioConnection(this, handlers);
    this.conns.add(c);
    return c;
  }

  get childAlive(): boolean {
    return this.child?.alive === true;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  ensureChild(): Promise<StdioUpstream> {
    if (this.child?.alive) return Promise.resolve(this.child);
    if (this.starting) return this.starting;
    const child = new StdioUpstream({
      spec: this.opts.spec,
      maxMessageBytes: this.opts.maxMessageBytes,
      ...(this.opts.onStderr ? { onStderr: this.opts.onStderr } : {}),
      handlers: { onMessage: (m) => this.fromChild(child, m), onClose: (r) => this.childClosed(child, r) },
    });
    this.initResult = undefined;
    this.initialized = false;
    this.starting = child.start().then(
      () => {
        this.child = child;
        this.starting = undefined;
        return child;
      },
      (err: unknown) => {
        this.starting = undefined;
        throw err;
      },
    );
    return this.starting;
  }

  private childClosed(child: StdioUpstream, reason: UpstreamCloseReason): void {
    if (this.child !== child && this.child !== undefined) return;
    this.child = undefined;
    this.routes.clear();
    this.tokens.clear();
    this.serverRequests.clear();
    for (const c of [...this.conns]) c.ended(reason);
  }

  /** Drop a request's route and its progress token (answered, or cancelled). */
  private forget(gid: number): void {
    const r = this.routes.get(gid);
    if (r === undefined) return;
    this.routes.delete(gid);
    if (r.progressToken !== undefined) this.tokens.delete(r.progressToken);
  }

  /** Entries held for requests in flight (tests: nothing may outlive its request). */
  get tracked(): { routes: number; tokens: number } {
    return { routes: this.routes.size, tokens: this.tokens.size };
  }

  detach(c: VirtualStdioConnection): void {
    this.conns.delete(c);
    for (const [g, r] of this.routes) if (r.conn === c) this.routes.delete(g);
    for (const [t, r] of this.tokens) if (r.conn === c) this.tokens.delete(t);
    for (const [k, v] of this.serverRequests) if (v === c) this.serverRequests.delete(k);
  }

  async send(c: VirtualStdioConnection, msg: JsonRpcMessage): Promise<void> {
    const child = await this.ensureChild();
    if (isRequest(msg)) {
      if (msg.method === 'initialize' && this.initResult !== undefined) {
        const result = this.initResult;
        queueMicrotask(() => c.deliver({ jsonrpc: '2.0', id: msg.id, result: structuredClone(result) }));
        return;
      }
      const gid = this.nextId++;
      const route: Route = { conn: c, localId: msg.id };
      this.routes.set(gid, route);
      c.local.set(idKey(msg.id), gid);
      let out: JsonRpcRequest = { ...msg, id: gid };
      const meta = msg.params?._meta as Record<string, unknown> | undefined;
      if (meta && meta.progressToken !== undefined) {
        const gt = `p${this.nextToken++}`;
        this.tokens.set(gt, { conn: c, token: meta.progressToken });
        route.progressToken = gt;
        out = { ...out, params: { ...msg.params, _meta: { ...meta, progressToken: gt } } };
      }
      await child.send(out);
      return;
    }
    if ('method' in msg) {
      if (msg.method === 'notifications/initialized') {
        if (this.initialized) return;
        this.initialized = true;
      }
      if (msg.method === 'notifications/cancelled') {
        const rid = msg.params?.requestId;
        const gid = rid === undefined || rid === null ? undefined : c.local.get(idKey(rid as JsonRpcId));
        if (gid === undefined) return;
        // The canceller ignores any answer still coming (spec), and the child may send none:
        // forget the route now, or every cancelled call would stay in these maps for good.
        c.local.delete(idKey(rid as JsonRpcId));
        this.forget(gid);
        await child.send({ ...msg, params: { ...msg.params, requestId: gid } });
        return;
      }
      await child.send(msg);
      return;
    }
    // The session's answer to a server request routed to it.
    const key = msg.id === null ? '' : idKey(msg.id);
    if (this.serverRequests.get(key) !== c) return;
    this.serverRequests.delete(key);
    await child.send(msg);
  }

  private fromChild(child: StdioUpstream, m: JsonRpcMessage): void {
    if (this.child !== child) return;
    if (!('method' in m)) {
      if (typeof m.id !== 'number') return;
      const r = this.routes.get(m.id);
      if (!r) return;
      this.forget(m.id);
      r.conn.local.delete(idKey(r.localId));
      const res = m as JsonRpcResponse;
      if (res.result && this.initResult === undefined && typeof (res.result as { protocolVersion?: unknown }).protocolVersion === 'string' && r.conn.pendingInitialize(r.localId)) {
        this.initResult = res.result;
      }
      // The parsed message has one owner (this route): its id is rewritten in place.
      res.id = r.localId;
      r.conn.deliver(res);
      return;
    }
    if (m.method.endsWith('/list_changed')) {
      for (const c of this.conns) c.deliver(m);
      return;
    }
    if (m.method === 'notifications/progress') {
      const t = this.tokens.get(String(m.params?.progressToken));
      if (t) t.conn.deliver({ ...m, params: { ...m.params, progressToken: t.token } } as JsonRpcNotification);
      return;
    }
    const busy = [...this.conns].filter((c) => c.local.size > 0);
    if (busy.length !== 1) {
      if (isRequest(m)) void child.send({ jsonrpc: '2.0', id: m.id, error: { code: -32603, message: 'The gateway cannot tell which session this request is for' } }).catch(() => {});
      return;
    }
    if (isRequest(m)) this.serverRequests.set(idKey(m.id), busy[0]!);
    busy[0]!.deliver(m);
  }

  async close(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    await child?.close();
  }
}

export class VirtualStdioConnection implements UpstreamConnection {
  /** Local (session) request id → hub id, while in flight. */
  readonly local = new Map<string, number>();
  private closed = false;
  private initializeId: JsonRpcId | undefined;

  constructor(
    private readonly hub: SharedStdioHub,
    private readonly handlers: UpstreamHandlers,
  ) {}

  get alive(): boolean {
    return !this.closed && this.hub.childAlive;
  }

  get pid(): number | undefined {
    return this.hub.pid;
  }

  async start(): Promise<void> {
    await this.hub.ensureChild();
  }

  send(msg: JsonRpcMessage): Promise<void> {
    if (this.closed) return Promise.reject(new Error('upstream connection is closed'));
    if (isRequest(msg) && msg.method === 'initialize') this.initializeId = msg.id;
    return this.hub.send(this, msg);
  }

  pendingInitialize(localId: JsonRpcId): boolean {
    return this.initializeId === localId;
  }

  deliver(m: JsonRpcMessage): void {
    if (!this.closed) this.handlers.onMessage(m, undefined);
  }

  ended(reason: UpstreamCloseReason): void {
    if (this.closed) return;
    this.closed = true;
    this.hub.detach(this);
    this.handlers.onClose(reason);
  }

  setProtocolVersion(): void {}

  async afterInitialized(): Promise<void> {}

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.hub.detach(this);
  }
}

function idKey(id: JsonRpcId): string {
  return typeof id === 'number' ? `n${id}` : `s${id}`;
}
