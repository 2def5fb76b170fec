/** Hand-built contexts, a fake SessionView and a recording audit log for the stage tests. */
import type { AuditEvent, AuditLog } from '../../../src/audit/types.js';
import type { Config } from '../../../src/config/schema.js';
import type { MessageContext, RequestContext, SessionView, ToolDefinition } from '../../../src/pipeline/context.js';
import type { JsonRpcMessage } from '../../../src/pipeline/messages.js';
import type { Principal } from '../../../src/identity/types.js';

export class RecordingAudit implements AuditLog {
  readonly events: AuditEvent[] = [];
  emit(e: AuditEvent): void {
    this.events.push(e);
  }
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
  last(): AuditEvent | undefined {
    return this.events[this.events.length - 1];
  }
}

export function tool(name: string, inputSchema: Record<string, unknown> = { type: 'object', properties: {} }): ToolDefinition {
  return { name, description: `the ${name} tool`, inputSchema };
}

export function fakeSession(tools: ToolDefinition[], mount = 'notes'): SessionView & { fetches: number } {
  const map = new Map(tools.map((t) => [t.name, t]));
  const s = {
    id: 'sess-1',
    mount,
    owner: 'owner',
    protocolVersion: '2025-11-25',
    createdAt: 0,
    fetches: 0,
    async upstreamTools() {
      s.fetches++;
      return map;
    },
  };
  return s;
}

let seq = 0;

export function requestCtx(opts: {
  config: Config;
  mount?: string;
  message?: JsonRpcMessage;
  principal?: Principal | undefined;
  session?: SessionView | undefined;
  ip?: string;
}): RequestContext {
  const mount = opts.mount ?? 'notes';
  return {
    requestId: `req-${++seq}`,
    startedAt: 0,
    mount: { name: mount, config: opts.config.servers[mount]!, resource: `https://gw.example/mcp/${mount}` },
    http: { method: 'POST', path: `/mcp/${mount}`, query: '', headers: {}, remoteAddress: opts.ip ?? '10.0.0.5', secure: true, peerCertificate: undefined, readBody: async () => Buffer.alloc(0) },
    session: opts.session,
    message: opts.message,
    principal: opts.principal,
    decisions: [],
    timings: {},
    locals: {},
  };
}

export function call(name: string, args?: Record<string, unknown>, id: number | string = 1): JsonRpcMessage {
  return { jsonrpc: '2.0', id, method: 'tools/call', params: { name, ...(args !== undefined ? { arguments: args } : {}) } };
}

export function messageCtx(req: RequestContext, method: string): MessageContext {
  return { mount: req.mount, session: req.session!, principal: req.principal, request: req, method };
}
