/**
 * application.output-sanitizer: everything an upstream sends that a model may read goes through
 * the sanitizer (src/sanitizer/) before the client sees it.
 *
 * Message kinds (MessageContext.method names the request a response answers):
 * - `tools/call` results: text and embedded-resource content, resource links, `structuredContent`
 *   (checked against the tool's `outputSchema` first, then sanitized);
 * - `resources/read` contents, `prompts/get` description and messages;
 * - JSON-RPC error responses (message and data) to any request;
 * - `notifications/message` (logs: data and logger), `notifications/progress` (message);
 * - server → client `sampling/createMessage` requests (messages and systemPrompt).
 * Other messages pass untouched (definitions are the integrity stage's business).
 *
 * Order inside the stage: size cap (so scanning is bounded), output schema (on what the upstream
 * sent), then hidden characters, injection and secrets per string. A blocked response or
 * server request becomes ERR_BASTION_SANITIZER_BLOCKED / _OUTPUT_TOO_LARGE / _OUTPUT_SCHEMA (a
 * JSON-RPC error saying what was withheld and why); a blocked notification is dropped. Every
 * change or block is audited as `output.sanitized` with rule ids and counts, never the content.
 */
import { BastionError, type ErrorCode } from '../../errors.js';
import type { AuditEvent, AuditLog } from '../../audit/types.js';
import type { SanitizeGlobalConfig, SanitizeServerConfig } from '../../config/sanitize.js';
import { withUpstreamTools, type MessageContext, type Stage, type ToolDefinition } from '../../pipeline/context.js';
import { isNotification, isRequest, isResponse, type JsonRpcMessage } from '../../pipeline/messages.js';
import {
  TextSink,
  capPayload,
  jsonBytesAtMost,
  sanitizeErrorObject,
  sanitizeLogParams,
  sanitizeProgressParams,
  sanitizePromptResult,
  sanitizeResourceResult,
  sanitizeSamplingParams,
  sanitizeToolResult,
} from '../../sanitizer/content.js';
import { checkOutputSchema } from '../../policy/output-schema.js';
import { resolvePolicy } from '../../sanitizer/policy.js';
import { SEVERITY_RANK, type Finding, type SanitizePolicy, type Severity } from '../../sanitizer/types.js';

export const OUTPUT_SANITIZER_STAGE = 'application.output-sanitizer';

/** Text kept past the cap for scanning, so a secret across the final cut is seen whole. */
const SCAN_MARGIN_BYTES = 64 * 1024;

export interface OutputSanitizerDeps {
  audit: AuditLog;
  /** The global `sanitize` section of the config (defaults apply when absent). */
  sanitize?: SanitizeGlobalConfig;
}

type Kind = 'tool-result' | 'resource' | 'prompt' | 'error' | 'log' | 'progress' | 'sampling';

const KIND_LABEL: Record<Kind, string> = {
  'tool-result': 'tool result',
  resource: 'resource contents',
  prompt: 'prompt',
  error: 'error message',
  log: 'log message',
  progress: 'progress message',
  sampling: 'sampling request',
};

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Where each kind keeps what is sanitized and size-capped. */
const SLOT: Record<Kind, 'result' | 'error' | 'params'> = {
  'tool-result': 'result',
  resource: 'result',
  prompt: 'result',
  error: 'error',
  log: 'params',
  progress: 'params',
  sampling: 'params',
};

/** The payload's strings through the sink; the payload itself when none changed (copy-on-write). */
const SANITIZE: Record<Kind, (payload: Obj, sink: TextSink) => Obj> = {
  'tool-result': sanitizeToolResult,
  resource: sanitizeResourceResult,
  prompt: sanitizePromptResult,
  error: sanitizeErrorObject,
  log: sanitizeLogParams,
  progress: sanitizeProgressParams,
  sampling: sanitizeSamplingParams,
};

function kindOf(ctx: MessageContext, msg: JsonRpcMessage): Kind | undefined {
  if (isResponse(msg)) {
    if (msg.error !== undefined) return 'error';
    switch (ctx.method) {
      case 'tools/call':
        return 'tool-result';
      case 'resources/read':
        return 'resource';
      case 'prompts/get':
        return 'prompt';
      default:
        return undefined;
    }
  }
  if (isRequest(msg)) return msg.method === 'sampling/createMessage' ? 'sampling' : undefined;
  if (isNotification(msg)) {
    if (msg.method === 'notifications/message') return 'log';
    if (msg.method === 'notifications/progress') return 'progress';
  }
  return undefined;
}

function toolNameOf(ctx: MessageContext): string | undefined {
  const m = ctx.request?.message;
  if (m === undefined || !('params' in m) || !isObj(m.params)) return undefined;
  return typeof m.params.name === 'string' ? m.params.name : undefined;
}

interface Tally {
  rule: string;
  severity: Severity;
  count: number;
}

function tally(findings: readonly Finding[]): Tally[] {
  const m = new Map<string, Tally>();
  for (const f of findings) {
    const t = m.get(f.rule);
    const n = f.count ?? 1;
    if (t === undefined) m.set(f.rule, { rule: f.rule, severity: f.severity, count: n });
    else {
      t.count += n;
      if (SEVERITY_RANK[f.severity] > SEVERITY_RANK[t.severity]) t.severity = f.severity;
    }
  }
  return [...m.values()].sort((a, b) => SEVERITY_RANK[b.severity] - SEVERITY_RANK[a.severity] || a.rule.localeCompare(b.rule));
}

function actionOf(policy: SanitizePolicy, findings: readonly Finding[], truncated: boolean): string {
  const acted = findings.filter((f) => f.kind === 'injection' && SEVERITY_RANK[f.severity] >= SEVERITY_RANK[policy.injectionMinSeverity]);
  if (acted.length > 0 && policy.injection === 'annotate') return 'annotated';
  if (acted.length > 0 && policy.injection === 'redact') return 'redacted';
  if (findings.some((f) => f.kind === 'secret') && policy.secrets === 'redact') return 'redacted';
  if (findings.some((f) => f.kind === 'hidden')) return 'stripped';
  if (truncated) return 'truncated';
  return 'reported';
}

export function outputSanitizerStage(deps: OutputSanitizerDeps): Stage {
  const emit = (ctx: MessageContext, kind: Kind, tool: string | undefined, fields: Partial<AuditEvent> & { outcome: AuditEvent['outcome'] }): void => {
    const p = ctx.principal;
    deps.audit.emit({
      type: 'output.sanitized',
      mount: ctx.mount.name,
      sessionId: ctx.session.id,
      ...(ctx.request !== undefined ? { requestId: ctx.request.requestId } : {}),
      ...(p !== undefined ? { principal: { subject: p.subject, issuer: p.issuer, clientId: p.clientId, authMethod: p.authMethod, tokenId: p.tokenId } } : {}),
      method: ctx.method,
      kind,
      ...(tool !== undefined ? { tool } : {}),
      ...fields,
    });
  };

  const refuse = (
    ctx: MessageContext,
    kind: Kind,
    tool: string | undefined,
    code: ErrorCode,
    why: string,
    rules: Tally[],
    action: string,
  ): BastionError => {
    const what = tool !== undefined ? `The result of tool '${tool}'` : `The ${KIND_LABEL[kind]}`;
    const ruleText = rules.length > 0 ? ` (rules: ${rules.map((r) => r.rule).join(', ')})` : '';
    const err = new BastionError(
      code,
      `${what} was withheld by the gateway's output sanitizer: ${why}${ruleText}. The server operator can review the upstream output or change servers.${ctx.mount.name}.sanitize.`,
      { data: { withheld: true, reason: why, rules: rules.map((r) => ({ rule: r.rule, severity: r.severity, count: r.count })) }, reason: action },
    );
    emit(ctx, kind, tool, { outcome: 'denied', reason: err.reason, action: 'blocked', rules: rules.map((r) => r.rule), findings: rules });
    return err;
  };

  // The config is frozen: resolve each (server, tool) policy once. Keys are bounded by the
  // config (a tool without its own override shares the server's entry), not by client input.
  const policies = new Map<string, SanitizePolicy>();
  const policyFor = (ctx: MessageContext, tool: string | undefined): SanitizePolicy => {
    const server = ctx.mount.config.sanitize as SanitizeServerConfig | undefined;
    const own = tool !== undefined && server?.tools !== undefined && Object.prototype.hasOwnProperty.call(server.tools, tool);
    const key = own ? `${ctx.mount.name}\u0000${tool}` : ctx.mount.name;
    let p = policies.get(key);
    if (p === undefined) {
      p = resolvePolicy(deps.sanitize, server, own ? tool : undefined);
      policies.set(key, p);
    }
    return p;
  };

  /**
   * Synchronous unless the tool's outputSchema is needed and the session has not fetched its
   * catalog yet: the common result costs no promise and no await.
   */
  const run = (ctx: MessageContext, msg: JsonRpcMessage, kind: Kind): JsonRpcMessage | null | Promise<JsonRpcMessage | null> => {
    const tool = kind === 'tool-result' ? toolNameOf(ctx) : undefined;
    const policy = policyFor(ctx, tool);
    const slot = SLOT[kind];
    const blocked = (code: ErrorCode, why: string, rules: Tally[], action: string): null => {
      if (kind === 'log' || kind === 'progress') {
        emit(ctx, kind, tool, { outcome: 'denied', reason: action, action: 'blocked', rules: rules.map((r) => r.rule), findings: rules });
        return null;
      }
      throw refuse(ctx, kind, tool, code, why, rules, action);
    };

    // The message is only read: sanitizing copies what it changes (copy-on-write). Cutting text to
    // the cap works in place, so a payload that may come near the cap is cloned first.
    let work = msg as JsonRpcMessage & Record<'result' | 'error' | 'params', unknown>;

    // 1. Size cap. Over the cap and `block`: refused before any scanning. Otherwise a coarse cut
    // (cap + margin) bounds the scan; the exact cut happens after redaction, so a secret that
    // straddles the cut point is redacted whole first and never leaks a prefix. A payload whose
    // size bound (computed without serializing) is under cap - margin needs neither cut: the
    // exact size is measured only when the bound does not settle it.
    let originalSize = 0;
    let measured = false;
    if (isObj(work[slot]) && !jsonBytesAtMost(work[slot], policy.maxOutputBytes - SCAN_MARGIN_BYTES)) {
      work = structuredClone(msg) as typeof work;
      const capped = work[slot] as Obj;
      originalSize = Buffer.byteLength(JSON.stringify(capped), 'utf8');
      measured = true;
      if (originalSize > policy.maxOutputBytes) {
        if (policy.oversize === 'block') {
          return blocked('ERR_BASTION_SANITIZER_OUTPUT_TOO_LARGE', `it is ${originalSize} bytes, over the limit of ${policy.maxOutputBytes}`, [], 'output_too_large');
        }
        if (originalSize > policy.maxOutputBytes + SCAN_MARGIN_BYTES) {
          const r = capPayload(capped, policy.maxOutputBytes + SCAN_MARGIN_BYTES);
          if (!r.ok) {
            return blocked('ERR_BASTION_SANITIZER_OUTPUT_TOO_LARGE', `it is ${r.size} bytes, over the limit of ${policy.maxOutputBytes}, and cutting its text is not enough`, [], 'output_too_large');
          }
        }
      }
    }

    // 2. structuredContent against the tool's outputSchema (what the upstream sent), from the
    // session's catalog: at hand (synchronous), or fetched first. `null`: the lookup failed.
    if (kind === 'tool-result' && policy.outputSchema !== 'off' && tool !== undefined && isObj(work.result)) {
      return withUpstreamTools(ctx.session, scan, () => scan(null));
    }
    return scan(undefined);

    /** Steps 2 to 4; `tools` is undefined when no outputSchema check applies. */
    function scan(tools: ReadonlyMap<string, ToolDefinition> | null | undefined): JsonRpcMessage | null {
      const findings: Finding[] = [];
      let schema: Obj | undefined;
      if (tools !== undefined && tool !== undefined && isObj(work.result)) {
        const def = tools?.get(tool);
        schema = isObj(def?.outputSchema) ? def.outputSchema : undefined;
        const check = tools === null
          ? work.result.structuredContent !== undefined
            ? ({ ok: false, reason: 'schema_unusable', message: "the tool's definition could not be loaded to check structuredContent" } as const)
            : ({ ok: true } as const)
          : checkOutputSchema(schema, work.result);
        if (!check.ok) {
          const f: Finding = { rule: `schema.${check.reason}`, kind: 'schema', severity: 'medium', message: check.message, evidence: check.message };
          if (policy.outputSchema === 'enforce') {
            return blocked('ERR_BASTION_SANITIZER_OUTPUT_SCHEMA', `structuredContent does not conform to the tool's outputSchema: ${check.message}`, tally([f]), 'output_schema');
          }
          findings.push(f);
        }
      }

      // 3. Strings: hidden characters, injection, secrets.
      const sink = new TextSink(policy);
      const payload = work[slot];
      const sanitized = isObj(payload) ? SANITIZE[kind](payload, sink) : payload;
      const out = sanitized === payload ? work : ({ ...work, [slot]: sanitized } as typeof work);
      findings.push(...sink.findings);

      // Redaction or markers can make structuredContent break its schema (a pattern, a maxLength):
      // the client would reject it, so say so here instead.
      if (schema !== undefined && policy.outputSchema === 'enforce' && sink.changed && isObj(out.result) && !sink.block) {
        const after = checkOutputSchema(schema, out.result);
        if (!after.ok) {
          const f: Finding = { rule: 'schema.invalid-after-sanitizing', kind: 'schema', severity: 'medium', message: after.message, evidence: after.message };
          return blocked(
            'ERR_BASTION_SANITIZER_BLOCKED',
            `after redacting or marking its content, structuredContent no longer conforms to the tool's outputSchema (${after.message})`,
            tally([...findings, f]),
            'output_schema_after_sanitizing',
          );
        }
      }

      // 4. Exact size cap on the sanitized payload.
      let truncatedBytes = 0;
      if (!sink.block && measured && isObj(sanitized) && originalSize > policy.maxOutputBytes - SCAN_MARGIN_BYTES) {
        const r = capPayload(sanitized, policy.maxOutputBytes);
        if (!r.ok) {
          return blocked('ERR_BASTION_SANITIZER_OUTPUT_TOO_LARGE', `it is ${originalSize} bytes, over the limit of ${policy.maxOutputBytes}, and cutting its text is not enough`, [], 'output_too_large');
        }
        if (r.truncatedBytes > 0) truncatedBytes = Math.max(r.truncatedBytes, originalSize - Buffer.byteLength(JSON.stringify(sanitized), 'utf8'));
      }
      if (sink.block) {
        const rules = tally(findings);
        const why = sink.tooDeep
          ? 'it nests deeper than the sanitizer can scan'
          : findings.some((f) => f.kind === 'injection' && policy.injection === 'block' && SEVERITY_RANK[f.severity] >= SEVERITY_RANK[policy.injectionMinSeverity])
          ? 'it contains text that looks like instructions to the model (prompt injection)'
          : 'it contains secrets';
        const blockedRules = rules.filter((r) => !r.rule.startsWith('hidden.') || r.severity === 'high');
        return blocked('ERR_BASTION_SANITIZER_BLOCKED', why, blockedRules, sink.tooDeep ? 'too_deep' : why.includes('secrets') ? 'secret' : 'prompt_injection');
      }
      if (findings.length === 0 && truncatedBytes === 0) return msg;
      const rules = tally(findings);
      emit(ctx, kind, tool, {
        outcome: 'info',
        action: actionOf(policy, findings, truncatedBytes > 0),
        rules: rules.map((r) => r.rule),
        findings: rules,
        counts: {
          injection: findings.filter((f) => f.kind === 'injection').length,
          secret: findings.filter((f) => f.kind === 'secret').length,
          hidden: findings.filter((f) => f.kind === 'hidden').reduce((n, f) => n + (f.count ?? 1), 0),
          schema: findings.filter((f) => f.kind === 'schema').length,
        },
        ...(truncatedBytes > 0 ? { truncatedBytes } : {}),
      });
      return sink.changed || truncatedBytes > 0 ? out : msg;
    }
  };

  return {
    name: OUTPUT_SANITIZER_STAGE,
    phase: 'application',
    onUpstreamMessage(ctx, msg) {
      const kind = kindOf(ctx, msg);
      if (kind === undefined) return msg;
      // A refusal is a rejected promise, as it was when the whole stage was async.
      try {
        return run(ctx, msg, kind);
      } catch (err) {
        return Promise.reject(err);
      }
    },
  };
}
