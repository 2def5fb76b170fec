/**
 * What a request carries through the pipeline. Created once per HTTP request by server.ts;
 * stages read it and add to it (principal, decisions, locals) but never replace it.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { PeerCertificate } from 'node:tls';
import type { Principal } from '../identity/types.js';
import type { JsonRpcMessage } from './messages.js';
import type { ServerConfig } from '../config/schema.js';

export type RequestOutcome = 'allowed' | 'denied' | 'error';

/** One answered or refused request, for metrics (GatewayOptions.observe). */
export interface RequestObservation {
  mount: string;
  /** JSON-RPC method (`tools/call`, `tools/list`, ...) or the HTTP method for non-RPC requests. */
  method: string;
  tool?: string | undefined;
  outcome: RequestOutcome;
  /** Why it was denied or failed (BastionError.reason), e.g. `insufficient_scope`. */
  reason?: string | undefined;
  /** End-to-end milliseconds. */
  durationMs: number;
  /** Milliseconds per stage (RequestContext.timings). */
  stages?: Readonly<Record<string, number>> | undefined;
}

export type Phase = 'transport' | 'identity' | 'authorization' | 'application' | 'upstream';

export interface HttpInfo {
  method: string;
  /** Path without the query string. */
  path: string;
  /** Raw query string without `?` ('' when none). */
  query: string;
  headers: IncomingHttpHeaders;
  remoteAddress: string;
  /** True when the connection is TLS. */
  secure: boolean;
  /** Verified client certificate (mTLS), when one was presented and verified. */
  peerCertificate: PeerCertificate | undefined;
  /** Read the request body; rejects with 413 past `limit` bytes. Only the body stage calls it. */
  readBody(limit: number): Promise<Buffer>;
}

/** What the gateway knows about the upstream's definitions (filled from tools/list etc.). */
export interface MountRuntime {
  readonly name: string;
  readonly config: ServerConfig;
  /** Canonical resource URI of this mount: `${publicUrl}/mcp/NAME` (RFC 8707 audience). */
  readonly resource: string;
}

export interface SessionView {
  readonly id: string;
  readonly mount: string;
  /** Principal key (issuer, subject, client) of the creator; undefined when auth is off. */
  readonly owner: string | undefined;
  /** Negotiated protocol version (from the upstream's initialize result). */
  readonly protocolVersion: string | undefined;
  readonly createdAt: number;
  /**
   * The upstream's current tool definitions, as the upstream sent them (all pages, before any
   * stage filtered them). Fetched by the gateway itself on first use, refreshed after
   * `notifications/tools/list_changed`. Stages that need a definition (argument validation,
   * pins) ask here rather than trusting what the client saw.
   */
  upstreamTools(): Promise<ReadonlyMap<string, ToolDefinition>>;
  /**
   * The same catalog when it is already fetched and current, else undefined: lets a stage stay
   * synchronous on the hot path (no promise, no await) and fall back to upstreamTools().
   */
  toolsNow?(): ReadonlyMap<string, ToolDefinition> | undefined;
}

/**
 * `f(catalog)`: synchronously when the session has its catalog at hand, else once it is fetched.
 * A fetch that fails rejects, or, with `unavailable`, gives its answer instead (only the fetch:
 * what `f` throws is never turned into `unavailable`).
 */
export function withUpstreamTools<T>(session: SessionView, f: (tools: ReadonlyMap<string, ToolDefinition>) => T, unavailable?: () => T): T | Promise<T> {
  const now = session.toolsNow?.();
  return now !== undefined ? f(now) : session.upstreamTools().then(f, unavailable);
}

/** A tool as listed by an upstream (MCP `Tool`). Hostile input: validate before trusting fields. */
export interface ToolDefinition {
  name: string;
  title?: string;
  description?: string;
  inputSchema?: Record<string, unknown>;
  outputSchema?: Record<string, unknown>;
  annotations?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface DecisionRecord {
  stage: string;
  outcome: 'allow' | 'deny' | 'modify' | 'hold';
  reason?: string;
  /** Public details for audit (rule ids, policy name). Never secrets. */
  detail?: Record<string, unknown>;
}

export interface RequestContext {
  readonly requestId: string;
  /** performance.now() at arrival. */
  readonly startedAt: number;
  readonly mount: MountRuntime;
  readonly http: HttpInfo;
  session: SessionView | undefined;
  /** The client's JSON-RPC message (POST only; undefined for GET and DELETE until parsed). */
  message: JsonRpcMessage | undefined;
  principal: Principal | undefined;
  readonly decisions: DecisionRecord[];
  /** Per-stage milliseconds, filled when timing is on. */
  readonly timings: Record<string, number>;
  /** Scratch space for stages, keyed by stage name. */
  readonly locals: Record<string, unknown>;
}

/** Context of one upstream → client message (response, notification or server request). */
export interface MessageContext {
  readonly mount: MountRuntime;
  readonly session: SessionView;
  /** Principal that owns the session. */
  readonly principal: Principal | undefined;
  /** For a response: the downstream request it answers (with its method and params). */
  readonly request: RequestContext | undefined;
  /** Method of the request a response answers, or of the message itself. */
  readonly method: string | undefined;
}

/**
 * A stage: one small named step. `onRequest` runs for each client request in phase order and
 * refuses by throwing a BastionError. `onUpstreamMessage` runs on each upstream → client message
 * (the response path) and returns the message to pass on (possibly changed), `null` to drop it,
 * or throws a BastionError that replaces a response with an error.
 * Both may return synchronously: the runner awaits only promises, so a sync stage costs no tick.
 */
export interface Stage {
  /** Dotted name, `phase.step`: the same in logs, metrics and audit records. */
  readonly name: string;
  readonly phase: Phase;
  onRequest?(ctx: RequestContext): void | Promise<void>;
  onUpstreamMessage?(ctx: MessageContext, msg: JsonRpcMessage): JsonRpcMessage | null | Promise<JsonRpcMessage | null>;
}
