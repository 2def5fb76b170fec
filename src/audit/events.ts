/**
 * The audit event catalog: every event type the gateway emits, its fields, and where it maps to
 * Elastic Common Schema (ECS) and OCSF. docs/events.md is rendered from this list
 * (`bastion audit catalog > docs/events.md`) and a test fails when the two differ, or when code
 * emits a type that is not listed here.
 *
 * Names are `noun.verb`, past tense. Every event carries the common fields; event-specific fields
 * never hold a token, key or secret in clear (the sinks also scrub anything that looks like one).
 */
import type { AuditOutcome } from './types.js';

export interface EventField {
  name: string;
  type: string;
  description: string;
  /** ECS field the value maps to, when one fits. */
  ecs?: string;
}

export interface OcsfMapping {
  /** OCSF class name and uid (https://schema.ocsf.io). */
  className: string;
  classUid: number;
  activity?: string;
}

export interface EventSpec {
  type: string;
  description: string;
  outcomes: readonly AuditOutcome[];
  /** Which part of the gateway emits it. */
  emittedBy: string;
  fields: readonly EventField[];
  /** ECS `event.category` / `event.type`. */
  ecs: { category: readonly string[]; type: readonly string[] };
  ocsf?: OcsfMapping;
}

/** Fields every event carries (absent when not known at that point, e.g. no session yet). */
export const COMMON_FIELDS: readonly EventField[] = [
  { name: 'type', type: 'string', description: 'Event type from this catalog.', ecs: 'event.action' },
  { name: 'id', type: 'string', description: 'Unique event id (UUID), stable across retries so receivers can de-duplicate.', ecs: 'event.id' },
  { name: 'time', type: 'string (RFC 3339)', description: 'When the event happened (UTC).', ecs: '@timestamp' },
  { name: 'outcome', type: '`success` \\| `failure` \\| `denied` \\| `info`', description: 'Result of the action.', ecs: 'event.outcome (denied → failure, info → unknown)' },
  { name: 'reason', type: 'string', description: 'Machine-readable reason, e.g. `token_expired` (never secret).', ecs: 'event.reason' },
  { name: 'requestId', type: 'string', description: 'Gateway request id (also in logs and the `X-Request-Id` response header).', ecs: 'http.request.id' },
  { name: 'sessionId', type: 'string', description: 'MCP session id (`Mcp-Session-Id`).', ecs: 'session.id (custom)' },
  { name: 'mount', type: 'string', description: 'Upstream server name (`/mcp/NAME`).', ecs: 'service.target.name' },
  { name: 'clientIp', type: 'string', description: 'Client address as seen by the listener.', ecs: 'client.ip' },
  { name: 'principal', type: 'object', description: '`{subject, issuer, clientId?, authMethod, tokenId?}` of the caller. Never the token.', ecs: 'user.id = subject, user.domain = issuer' },
  { name: 'traceId', type: 'string (32 hex)', description: 'W3C trace id from the client\'s `traceparent`, when it sent one (the OTLP sink then joins its trace).', ecs: 'trace.id' },
  { name: 'parentSpanId', type: 'string (16 hex)', description: 'The client\'s span id from `traceparent`.', ecs: 'span.id (parent)' },
];

const toolCallFields: EventField[] = [
  { name: 'method', type: 'string', description: 'JSON-RPC method (`tools/call`).', ecs: 'rpc.method (custom)' },
  { name: 'tool', type: 'string', description: 'Tool name as the client called it.' },
  { name: 'args', type: 'object', description: 'Arguments with secrets redacted and large values summarized (`{$summary, length, sha256}`).' },
  { name: 'durations', type: 'object', description: 'Milliseconds per pipeline stage (`{"identity.bearer-token": 0.4, ...}`) and `total`.', ecs: 'event.duration (total, ns)' },
];

export const EVENT_CATALOG: readonly EventSpec[] = [
  {
    type: 'auth.succeeded',
    description: 'A request presented valid credentials (token, DPoP proof, client certificate or API key).',
    outcomes: ['success'],
    emittedBy: 'identity stages',
    fields: [{ name: 'authMethod', type: 'string', description: '`bearer`, `dpop`, `mtls`, `api-key`, ...', ecs: 'event.category=authentication' }],
    ecs: { category: ['authentication'], type: ['start'] },
    ocsf: { className: 'Authentication', classUid: 3002, activity: 'Logon' },
  },
  {
    type: 'auth.failed',
    description: 'A request was refused for missing or invalid credentials.',
    outcomes: ['failure'],
    emittedBy: 'identity stages',
    fields: [
      { name: 'reason', type: 'string', description: '`missing`, `invalid_token`, `wrong_audience`, `invalid_dpop_proof`, `client_cert_invalid`, ...' },
      { name: 'authMethod', type: 'string', description: 'Method attempted, when known.' },
      { name: 'error', type: 'string', description: 'Error code (`ERR_BASTION_AUTH_*`).', ecs: 'error.code' },
    ],
    ecs: { category: ['authentication'], type: ['start'] },
    ocsf: { className: 'Authentication', classUid: 3002, activity: 'Logon' },
  },
  {
    type: 'token.expired',
    description: 'A token was refused because it had expired (also counted as `auth.failed`).',
    outcomes: ['failure'],
    emittedBy: 'identity stages',
    fields: [{ name: 'expiredAt', type: 'string (RFC 3339)', description: 'The token `exp`.' }],
    ecs: { category: ['authentication'], type: ['info'] },
    ocsf: { className: 'Authentication', classUid: 3002 },
  },
  {
    type: 'tool.call.completed',
    description: 'A tool call went through the pipeline and the upstream answered (successfully or with a tool error).',
    outcomes: ['success', 'failure'],
    emittedBy: 'gateway (after the response path)',
    fields: [
      ...toolCallFields,
      { name: 'status', type: '`ok` \\| `tool_error` \\| `upstream_error` \\| `timeout` \\| `cancelled`', description: 'Result status (`cancelled`: the client cancelled the call, reason `client_cancelled`).' },
      { name: 'error', type: 'string', description: 'Error code when the gateway or upstream failed.', ecs: 'error.code' },
    ],
    ecs: { category: ['api'], type: ['access'] },
    ocsf: { className: 'API Activity', classUid: 6003, activity: 'Other' },
  },
  {
    type: 'tool.call.denied',
    description: 'A tool call was refused by a policy, scope, validation, rate limit, pin or sanitizer stage.',
    outcomes: ['denied'],
    emittedBy: 'gateway (from the refusing stage)',
    fields: [
      ...toolCallFields,
      { name: 'stage', type: 'string', description: 'Stage that refused (`authorization.policy`, ...).' },
      { name: 'policy', type: 'string', description: 'Policy or rule id that decided.', ecs: 'rule.id' },
      { name: 'error', type: 'string', description: 'Error code returned to the client.', ecs: 'error.code' },
    ],
    ecs: { category: ['api'], type: ['denied'] },
    ocsf: { className: 'API Activity', classUid: 6003 },
  },
  {
    type: 'request.rejected',
    description: 'The gateway refused a request with an error response (transport checks, session errors, shutting down, audit unavailable, internal errors); a stage that refused for its own reason may also have emitted a more specific event.',
    outcomes: ['denied', 'failure'],
    emittedBy: 'gateway (server.ts)',
    fields: [
      { name: 'code', type: 'string', description: 'Error code sent (`ERR_BASTION_*`).', ecs: 'error.code' },
      { name: 'method', type: 'string', description: 'JSON-RPC method, or the HTTP method when no message was parsed.', ecs: 'http.request.method' },
      { name: 'status', type: 'number', description: 'HTTP status sent.', ecs: 'http.response.status_code' },
    ],
    ecs: { category: ['network', 'web'], type: ['denied'] },
    ocsf: { className: 'HTTP Activity', classUid: 4002 },
  },
  {
    type: 'resource.read.denied',
    description: 'A resources/read was refused by policy.',
    outcomes: ['denied'],
    emittedBy: 'authorization stages',
    fields: [
      { name: 'uri', type: 'string', description: 'Resource URI requested.', ecs: 'url.original' },
      { name: 'policy', type: 'string', description: 'Policy or rule id that decided.', ecs: 'rule.id' },
      { name: 'stage', type: 'string', description: 'Stage that refused.' },
      { name: 'error', type: 'string', description: 'Error code returned.', ecs: 'error.code' },
    ],
    ecs: { category: ['api'], type: ['denied'] },
    ocsf: { className: 'API Activity', classUid: 6003 },
  },
  {
    type: 'prompt.get.denied',
    description: 'A prompts/get was refused by policy.',
    outcomes: ['denied'],
    emittedBy: 'authorization stages',
    fields: [
      { name: 'prompt', type: 'string', description: 'Prompt name requested.' },
      { name: 'policy', type: 'string', description: 'Policy or rule id that decided.', ecs: 'rule.id' },
      { name: 'stage', type: 'string', description: 'Stage that refused.' },
      { name: 'error', type: 'string', description: 'Error code returned.', ecs: 'error.code' },
    ],
    ecs: { category: ['api'], type: ['denied'] },
    ocsf: { className: 'API Activity', classUid: 6003 },
  },
  {
    type: 'upstream.failed',
    description: 'The connection to an upstream ended unexpectedly (process exit, protocol violation, network error); pending requests were failed.',
    outcomes: ['failure'],
    emittedBy: 'session',
    fields: [
      { name: 'reason', type: 'string', description: '`exited`, `protocol`, `network`, ...' },
      { name: 'detail', type: 'string', description: 'What happened (exit code, parse error); never upstream output.' },
    ],
    ecs: { category: ['process', 'network'], type: ['error'] },
    ocsf: { className: 'Process Activity', classUid: 1007 },
  },
  {
    type: 'session.created',
    description: 'An MCP session was initialized.',
    outcomes: ['success'],
    emittedBy: 'session manager',
    fields: [
      { name: 'protocolVersion', type: 'string', description: 'Negotiated MCP protocol version.' },
      { name: 'clientInfo', type: 'object', description: '`{name, version}` the client declared (hostile, informational).', ecs: 'user_agent.original' },
    ],
    ecs: { category: ['session'], type: ['start'] },
    ocsf: { className: 'API Activity', classUid: 6003, activity: 'Create' },
  },
  {
    type: 'session.ended',
    description: 'A session ended: DELETE by the client, idle timeout, upstream exit or shutdown.',
    outcomes: ['info'],
    emittedBy: 'session manager',
    fields: [
      { name: 'reason', type: 'string', description: '`client_deleted`, `idle_timeout`, `upstream_exited`, `shutdown`, `terminated`.' },
      { name: 'durationMs', type: 'number', description: 'Session lifetime.', ecs: 'event.duration (ns)' },
    ],
    ecs: { category: ['session'], type: ['end'] },
    ocsf: { className: 'API Activity', classUid: 6003, activity: 'Delete' },
  },
  {
    type: 'tool.definition.changed',
    description: 'An upstream tool definition differs from its pin (rug pull, update).',
    outcomes: ['info', 'denied'],
    emittedBy: 'integrity stages',
    fields: [
      { name: 'tool', type: 'string', description: 'Tool name.' },
      { name: 'pinnedHash', type: 'string', description: 'Hash of the pinned definition.', ecs: 'file.hash.sha256 (custom)' },
      { name: 'currentHash', type: 'string', description: 'Hash of the definition now served.' },
      { name: 'changedFields', type: 'string[]', description: 'Which parts changed (`description`, `inputSchema`, ...).' },
    ],
    ecs: { category: ['configuration'], type: ['change'] },
    ocsf: { className: 'Detection Finding', classUid: 2004 },
  },
  {
    type: 'tool.definition.approved',
    description: 'A tool definition was approved (pinned) by an operator or by trust-on-first-use.',
    outcomes: ['success'],
    emittedBy: 'integrity stages / CLI',
    fields: [
      { name: 'tool', type: 'string', description: 'Tool name.' },
      { name: 'hash', type: 'string', description: 'Hash of the approved definition.' },
      { name: 'by', type: 'string', description: '`operator` or `tofu`.' },
    ],
    ecs: { category: ['configuration'], type: ['change', 'allowed'] },
    ocsf: { className: 'Detection Finding', classUid: 2004 },
  },
  {
    type: 'tool.definition.blocked',
    description: 'A tool definition was held back from clients (unpinned change, poisoning scan hit, bad signature).',
    outcomes: ['denied'],
    emittedBy: 'integrity stages',
    fields: [
      { name: 'tool', type: 'string', description: 'Tool name.' },
      { name: 'findings', type: 'object[]', description: 'Scanner rule ids and locations (no raw payload).', ecs: 'rule.id' },
    ],
    ecs: { category: ['intrusion_detection'], type: ['denied'] },
    ocsf: { className: 'Detection Finding', classUid: 2004 },
  },
  {
    type: 'output.sanitized',
    description: 'A tool result or upstream message was changed or blocked by the sanitizer.',
    outcomes: ['info', 'denied'],
    emittedBy: 'sanitizer stages',
    fields: [
      { name: 'tool', type: 'string', description: 'Tool whose output was sanitized.' },
      { name: 'rules', type: 'string[]', description: 'Rules that matched (`invisible_chars`, `ansi`, `secret.aws`, `injection.*`).', ecs: 'rule.name' },
      { name: 'action', type: '`stripped` \\| `redacted` \\| `blocked` \\| `truncated`', description: 'What was done.' },
    ],
    ecs: { category: ['intrusion_detection'], type: ['info'] },
    ocsf: { className: 'Detection Finding', classUid: 2004 },
  },
  {
    type: 'rate_limit.exceeded',
    description: 'A caller went over a rate limit (the request also gets `tool.call.denied` when it was a tool call).',
    outcomes: ['denied'],
    emittedBy: 'authorization stages',
    fields: [
      { name: 'limit', type: 'string', description: 'Which limit (`per_token`, `per_tool`, ...).', ecs: 'rule.id' },
      { name: 'retryAfterMs', type: 'number', description: 'When the caller may try again.' },
    ],
    ecs: { category: ['api'], type: ['denied'] },
    ocsf: { className: 'API Activity', classUid: 6003 },
  },
  {
    type: 'config.changed',
    description: 'The configuration was loaded or reloaded, or a pin/deny-list changed through the CLI.',
    outcomes: ['success', 'failure'],
    emittedBy: 'gateway / CLI',
    fields: [
      { name: 'source', type: 'string', description: 'File or command that changed it.', ecs: 'file.path' },
      { name: 'hash', type: 'string', description: 'SHA-256 of the effective configuration (secrets excluded).' },
      { name: 'changedKeys', type: 'string[]', description: 'Top-level keys that differ from the previous configuration.' },
    ],
    ecs: { category: ['configuration'], type: ['change'] },
    ocsf: { className: 'Device Config State Change', classUid: 5019 },
  },
  {
    type: 'anomaly.detected',
    description: 'A baseline was exceeded: call rate, novel tool sequence, new parameter value, numeric outlier, latency spike, enumeration or probing.',
    outcomes: ['info'],
    emittedBy: 'anomaly detector',
    fields: [
      { name: 'kind', type: 'string', description: '`call_rate`, `tool_sequence`, `parameter_value`, `parameter_outlier`, `latency_spike`, `enumeration`, `unknown_tool`.', ecs: 'rule.name' },
      { name: 'severity', type: '`low` \\| `medium` \\| `high`', description: 'How unusual.', ecs: 'event.severity' },
      { name: 'subject', type: 'string', description: 'Baseline key (token hash or principal), never the token.' },
      { name: 'evidence', type: 'object', description: 'The numbers behind the finding (observed, baseline, threshold, window).' },
      { name: 'action', type: '`none` \\| `throttle` \\| `suspend`', description: 'Automatic response decided.' },
    ],
    ecs: { category: ['intrusion_detection'], type: ['indicator'] },
    ocsf: { className: 'Detection Finding', classUid: 2004 },
  },
  {
    type: 'incident.token.revoked',
    description: 'A token (by `jti` or hash) was put on the deny-list.',
    outcomes: ['success'],
    emittedBy: 'containment (CLI / admin API)',
    fields: [
      { name: 'tokenId', type: 'string', description: '`jti` or token hash revoked.' },
      { name: 'by', type: 'string', description: 'Operator or automatic rule.' },
      { name: 'kind', type: '`jti` \\| `token` \\| `subject` \\| `client` \\| `cert`', description: 'What was put on the deny-list (`token`: its SHA-256, never the token).' },
      { name: 'target', type: 'string', description: 'The revoked jti, token hash, subject, client id or certificate thumbprint (x5t#S256).' },
      { name: 'authorizationServer', type: 'object', description: '`{endpoint, status?, ok, error?}` of the RFC 7009 revocation call, when one was made (best effort).' },
    ],
    ecs: { category: ['iam'], type: ['deletion'] },
    ocsf: { className: 'Incident Finding', classUid: 2005 },
  },
  {
    type: 'incident.token.suspended',
    description: 'A token or subject was suspended until reviewed (e.g. by an anomaly action).',
    outcomes: ['success'],
    emittedBy: 'anomaly detector / containment',
    fields: [
      { name: 'subject', type: 'string', description: 'Suspended baseline key.' },
      { name: 'anomaly', type: 'string', description: 'Id of the `anomaly.detected` event that caused it.' },
    ],
    ecs: { category: ['iam'], type: ['change'] },
    ocsf: { className: 'Incident Finding', classUid: 2005 },
  },
  {
    type: 'incident.token.reinstated',
    description: 'A suspended token or subject was reinstated by an operator.',
    outcomes: ['success'],
    emittedBy: 'containment (CLI / admin API)',
    fields: [
      { name: 'subject', type: 'string', description: 'Reinstated baseline key (or `kind:value` of a removed deny-list entry).' },
      { name: 'by', type: 'string', description: 'Operator.' },
    ],
    ecs: { category: ['iam'], type: ['change'] },
    ocsf: { className: 'Incident Finding', classUid: 2005 },
  },
  {
    type: 'incident.tool.quarantined',
    description: 'A tool was quarantined: hidden from lists and refused on call.',
    outcomes: ['success'],
    emittedBy: 'containment (CLI / admin API)',
    fields: [
      { name: 'tool', type: 'string', description: 'Quarantined tool (`*`: the whole server, named in `mount`).' },
      { name: 'by', type: 'string', description: 'Operator or automatic rule.' },
    ],
    ecs: { category: ['configuration'], type: ['change'] },
    ocsf: { className: 'Incident Finding', classUid: 2005 },
  },
  {
    type: 'incident.tool.released',
    description: 'A quarantined tool was released.',
    outcomes: ['success'],
    emittedBy: 'containment (CLI / admin API)',
    fields: [
      { name: 'tool', type: 'string', description: 'Released tool (`*`: the whole server).' },
      { name: 'by', type: 'string', description: 'Operator.' },
    ],
    ecs: { category: ['configuration'], type: ['change'] },
    ocsf: { className: 'Incident Finding', classUid: 2005 },
  },
  {
    type: 'incident.session.terminated',
    description: 'A session was ended by an operator or an automatic rule (also emits `session.ended`).',
    outcomes: ['success'],
    emittedBy: 'containment (CLI / admin API)',
    fields: [{ name: 'by', type: 'string', description: 'Operator or automatic rule.' }],
    ecs: { category: ['session'], type: ['end'] },
    ocsf: { className: 'Incident Finding', classUid: 2005 },
  },
  {
    type: 'audit.events.dropped',
    description: 'Written by a sink in place of events it lost under the `drop` queue policy, so the gap is on the record.',
    outcomes: ['failure'],
    emittedBy: 'audit queue',
    fields: [
      { name: 'count', type: 'number', description: 'Events lost for this sink since its last write.' },
      { name: 'sink', type: 'string', description: 'Sink name.' },
    ],
    ecs: { category: ['process'], type: ['error'] },
  },
];

const BY_TYPE: ReadonlyMap<string, EventSpec> = new Map(EVENT_CATALOG.map((e) => [e.type, e]));

export function eventSpec(type: string): EventSpec | undefined {
  return BY_TYPE.get(type);
}

export function isKnownEventType(type: string): boolean {
  return BY_TYPE.has(type);
}

function cell(s: string): string {
  return s.replace(/\n/g, ' ');
}

/** The catalog as Markdown: docs/events.md is exactly this text. */
export function renderEventsMarkdown(): string {
  const out: string[] = [];
  out.push('# Audit event catalog');
  out.push('');
  out.push('<!-- Generated from src/audit/events.ts by `bastion audit catalog > docs/events.md`; a test fails when they differ. -->');
  out.push('');
  out.push('Every decision the gateway makes is an audit event. Names are `noun.verb`, past tense.');
  out.push('Events are JSON objects; the file sink wraps each in a hash-chained record (see docs/audit.md).');
  out.push('Fields map to [Elastic Common Schema](https://www.elastic.co/guide/en/ecs/current/) (ECS) names');
  out.push('and each event to an [OCSF](https://schema.ocsf.io) class where one fits.');
  out.push('No field ever holds a token, key or secret: the emitting code leaves them out, and every sink');
  out.push('scrubs anything that looks like one (JWTs, bearer values, API key formats, PEM keys) before writing.');
  out.push('');
  out.push('## Common fields');
  out.push('');
  out.push('| Field | Type | Description | ECS |');
  out.push('|---|---|---|---|');
  for (const f of COMMON_FIELDS) out.push(`| \`${f.name}\` | ${f.type} | ${cell(f.description)} | ${f.ecs ? `\`${f.ecs}\`` : ''} |`);
  out.push('');
  out.push('## Events');
  out.push('');
  out.push('| Event | Outcomes | Emitted by | OCSF class |');
  out.push('|---|---|---|---|');
  for (const e of EVENT_CATALOG) {
    out.push(`| [\`${e.type}\`](#${e.type.replace(/[._]/g, '')}) | ${e.outcomes.join(', ')} | ${e.emittedBy} | ${e.ocsf ? `${e.ocsf.className} (${e.ocsf.classUid})` : ''} |`);
  }
  for (const e of EVENT_CATALOG) {
    out.push('');
    out.push(`### ${e.type}`);
    out.push('');
    out.push(cell(e.description));
    out.push('');
    out.push(`- Outcomes: ${e.outcomes.map((o) => `\`${o}\``).join(', ')}`);
    out.push(`- ECS: \`event.category\` = ${e.ecs.category.map((c) => `\`${c}\``).join(', ')}; \`event.type\` = ${e.ecs.type.map((c) => `\`${c}\``).join(', ')}`);
    if (e.ocsf) out.push(`- OCSF: ${e.ocsf.className} (\`class_uid\` ${e.ocsf.classUid})${e.ocsf.activity ? `, activity ${e.ocsf.activity}` : ''}`);
    out.push('');
    out.push('| Field | Type | Description | ECS |');
    out.push('|---|---|---|---|');
    for (const f of e.fields) out.push(`| \`${f.name}\` | ${f.type} | ${cell(f.description)} | ${f.ecs ? `\`${f.ecs}\`` : ''} |`);
  }
  out.push('');
  return out.join('\n');
}
