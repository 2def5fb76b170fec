/**
 * Audit, metrics and anomaly-detection configuration fields (owned by the audit layer).
 *
 * `audit.sinks[].type` and the keys `path`, `url`, `endpoint` are a contract other tools rely on
 * (issue 8): `audit: {sinks: [{type: stdout} | {type: file, path} | {type: syslog, url} |
 * {type: otlp, endpoint} | {type: webhook, url}]}`.
 */
import { z } from 'zod';
import { secretRefSchema } from './auth.js';

const retryFields = {
  retry: z
    .object({
      initialDelayMs: z.number().int().positive().default(200).describe('First delay before a failed batch is sent again.'),
      maxDelayMs: z.number().int().positive().default(30_000).describe('Upper bound of the exponential backoff between attempts.'),
    })
    .strict()
    .prefault({})
    .describe('Retry of a failed batch: exponential backoff, the batch is kept (not lost) until it is written or the queue policy applies.'),
};

const batchField = {
  batchSize: z.number().int().min(1).max(10_000).default(256).describe('Most events handed to this sink in one write.'),
};

export const stdoutSinkSchema = z
  .object({
    type: z.literal('stdout').describe('JSON lines on standard output (one event per line).'),
    ...batchField,
    ...retryFields,
  })
  .strict();

export const fileSinkSchema = z
  .object({
    type: z.literal('file').describe('Append-only JSON-lines file with a SHA-256 hash chain; check it with `bastion audit verify FILE`.'),
    path: z.string().min(1).describe('File to append to (created with mode 0600; relative to the config file). An existing chain is continued.'),
    fsync: z.boolean().default(false).describe('fsync after every batch (durable across power loss, slower).'),
    checkpoint: z
      .object({
        keyFile: z
          .string()
          .optional()
          .describe('Ed25519 private key (PKCS#8 PEM) that signs checkpoints (`bastion audit keygen` makes one). Without it checkpoints are unsigned and the chain detects damage, not a deliberate rewrite.'),
        everyRecords: z.number().int().min(1).default(1000).describe('Write a checkpoint after this many records (and always when the sink closes).'),
        everySeconds: z
          .number()
          .int()
          .min(0)
          .default(60)
          .describe('Also write one when records have waited this long without a checkpoint, so a quiet gateway does not leave its last records unsigned (0: off).'),
      })
      .strict()
      .prefault({})
      .describe('Periodic checkpoints: the hash of the chain so far, signed with Ed25519 when a key is given.'),
    ...batchField,
    ...retryFields,
  })
  .strict();

export const syslogSinkSchema = z
  .object({
    type: z.literal('syslog').describe('RFC 5424 syslog over TCP or TLS, octet-counting framing (RFC 6587).'),
    url: z
      .string()
      .regex(/^(tcp|tls):\/\/[^/\s]+:\d{1,5}\/?$/, 'use tcp://HOST:PORT or tls://HOST:PORT')
      .describe('Collector address: tcp://HOST:PORT or tls://HOST:PORT (TLS verifies the server certificate).'),
    ca: z.string().optional().describe('PEM file of the CA that signed the collector certificate (TLS; default: the system CAs).'),
    cert: z.string().optional().describe('PEM client certificate for mutual TLS.'),
    key: z.string().optional().describe('PEM private key of the client certificate.'),
    servername: z.string().optional().describe('TLS server name to verify (default: the host of `url`).'),
    facility: z.number().int().min(0).max(23).default(13).describe('Syslog facility (13 = log audit).'),
    appName: z.string().regex(/^[!-~]{1,48}$/).default('mcp-bastion').describe('APP-NAME field.'),
    hostname: z.string().regex(/^[!-~]{1,255}$/).optional().describe('HOSTNAME field (default: os.hostname()).'),
    connectTimeoutMs: z.number().int().positive().default(5_000).describe('Timeout to connect to the collector.'),
    ...batchField,
    ...retryFields,
  })
  .strict();

export const otlpSinkSchema = z
  .object({
    type: z.literal('otlp').describe('OpenTelemetry OTLP/HTTP with JSON encoding: audit events as logs, requests as traces.'),
    endpoint: z
      .string()
      .url()
      .describe('Base URL of the OTLP/HTTP receiver, e.g. http://collector:4318 (`/v1/logs` and `/v1/traces` are appended).'),
    headers: z.record(z.string(), z.string()).default({}).describe('Headers sent with every export (e.g. an API key; never logged).'),
    traces: z.boolean().default(true).describe('Also export one span per request with a child span per pipeline stage.'),
    serviceName: z.string().default('mcp-bastion').describe('`service.name` resource attribute.'),
    timeoutMs: z.number().int().positive().default(10_000).describe('Timeout of one export request.'),
    ...batchField,
    ...retryFields,
  })
  .strict();

export const webhookSinkSchema = z
  .object({
    type: z.literal('webhook').describe('POST batches of events as JSON to a URL; retried with exponential backoff until accepted.'),
    url: z.string().url().describe('Receiver URL (https:// recommended).'),
    headers: z.record(z.string(), z.string()).default({}).describe('Headers sent with every batch (e.g. Authorization for the receiver; never logged).'),
    secret: z
      .string()
      .min(16)
      .optional()
      .describe('Shared secret: each body is signed with HMAC-SHA256 in `X-Bastion-Signature: sha256=HEX` so the receiver can check it.'),
    timeoutMs: z.number().int().positive().default(10_000).describe('Timeout of one POST.'),
    ...batchField,
    ...retryFields,
  })
  .strict();

export const auditSinkSchema = z.discriminatedUnion('type', [
  stdoutSinkSchema,
  fileSinkSchema,
  syslogSinkSchema,
  otlpSinkSchema,
  webhookSinkSchema,
]);

export const auditQueueSchema = z
  .object({
    maxEvents: z.number().int().min(1).default(10_000).describe('Most events held in memory waiting for a sink.'),
    onFull: z
      .enum(['block', 'drop'])
      .default('block')
      .describe('When a sink is down long enough to fill the queue: `block` refuses new requests with 503 (fail closed) until it drains; `drop` keeps serving, drops events for the lagging sink, counts them and logs an error.'),
  })
  .strict()
  .prefault({});

const anomalyAction = z.enum(['none', 'throttle', 'suspend']);

export const anomalySchema = z
  .object({
    enabled: z.boolean().default(false).describe('Keep per-token and per-tool baselines and emit `anomaly.detected`.'),
    windowSeconds: z.number().int().min(1).default(60).describe('Length of one counting window.'),
    ewmaAlpha: z.number().gt(0).max(1).default(0.3).describe('Weight of the newest window in the call-rate average.'),
    warmupWindows: z.number().int().min(1).default(5).describe('Windows of history a token needs before its rate is judged.'),
    rateFactor: z.number().gt(1).default(10).describe('A window with more than this many times the average rate is anomalous.'),
    minCallsPerWindow: z.number().int().min(1).default(30).describe('Never flag a window with fewer calls than this.'),
    enumeration: z
      .object({
        listCallsPerWindow: z.number().int().min(1).default(30).describe('List calls (tools/list, resources/list, ...) per window that count as enumeration.'),
        unknownToolCallsPerWindow: z.number().int().min(1).default(5).describe('Calls to unknown or hidden tools per window that count as probing.'),
      })
      .strict()
      .prefault({})
      .describe('Enumeration and probing.'),
    sequence: z
      .object({
        warmupCalls: z.number().int().min(1).default(200).describe('Calls a token makes before a never-seen tool pair is reported.'),
        maxPairs: z.number().int().min(1).default(512).describe('Most tool pairs remembered per token.'),
      })
      .strict()
      .prefault({})
      .describe('Novel tool sequences per token.'),
    parameters: z
      .object({
        warmupObservations: z.number().int().min(1).default(100).describe('Calls of a tool before its parameters are judged.'),
        maxCategories: z.number().int().min(1).default(32).describe('A string parameter with more distinct values is treated as free text and not judged.'),
        zScore: z.number().positive().default(6).describe('A number further than this many standard deviations from the mean is an outlier.'),
      })
      .strict()
      .prefault({})
      .describe('Per-tool parameter distributions.'),
    latency: z
      .object({
        warmupObservations: z.number().int().min(1).default(30).describe('Upstream answers before latency is judged.'),
        factor: z.number().gt(1).default(5).describe('Latency more than this many times the average (and 6 deviations above it) is a spike.'),
        minMs: z.number().min(0).default(250).describe('Never flag an answer faster than this.'),
      })
      .strict()
      .prefault({})
      .describe('Upstream latency spikes per tool.'),
    actions: z
      .object({
        callRate: anomalyAction.default('none').describe('Action on a call-rate anomaly.'),
        enumeration: anomalyAction.default('none').describe('Action on enumeration or probing of unknown tools.'),
        sequence: anomalyAction.default('none').describe('Action on a novel tool sequence.'),
        parameter: anomalyAction.default('none').describe('Action on a new categorical value or numeric outlier.'),
      })
      .strict()
      .prefault({})
      .describe('Automatic responses, applied by the gateway: `throttle` limits the token, `suspend` refuses it until an operator reinstates it.'),
    throttle: z
      .object({
        ratePerSecond: z.number().positive().default(1).describe('Rate allowed to a throttled token.'),
        burst: z.number().int().min(1).default(5).describe('Burst allowed to a throttled token.'),
        durationSeconds: z.number().int().min(1).default(900).describe('How long a throttle lasts.'),
      })
      .strict()
      .prefault({})
      .describe('Throttle parameters.'),
    baselineTtlSeconds: z.number().int().min(60).default(7 * 86_400).describe('Baselines not updated for this long are forgotten.'),
  })
  .strict()
  .prefault({});

export const auditGlobalFields = {
  audit: z
    .object({
      sinks: z
        .array(auditSinkSchema)
        .prefault([{ type: 'stdout' }])
        .describe('Where audit events go; several at once. Default: stdout JSON lines.'),
      queue: auditQueueSchema.describe('The bounded in-memory queue between the request path and the sinks.'),
      stageDurations: z
        .boolean()
        .optional()
        .describe(
          'Per-stage milliseconds in request records (`durations.<stage>`; `durations.total` is always there). Default: on when an otlp sink is configured (its traces are built from them), off otherwise: they are performance telemetry, about 40% of a tool call record, and the same figures are in the metrics (bastion_stage_duration_seconds).',
        ),
    })
    .strict()
    .prefault({})
    .describe('Audit trail: every decision as a structured event (catalog: docs/events.md).'),
  metrics: z
    .object({
      enabled: z.boolean().default(true).describe('Serve Prometheus metrics.'),
      path: z.string().regex(/^\/[A-Za-z0-9._~/-]*$/).default('/metrics').describe('HTTP path of the metrics endpoint on the listener.'),
      token: secretRefSchema
        .optional()
        .describe('Bearer token a scraper must send (`Authorization: Bearer …`, Prometheus `authorization.credentials_file`). Without it, anyone who reaches the listener can read the metrics (mount and tool names, decision counts).'),
    })
    .strict()
    .prefault({})
    .describe('Prometheus metrics (text exposition format).'),
  anomaly: anomalySchema.describe('Anomaly detection on per-token and per-tool baselines.'),
};

export type AuditSinkConfig = z.output<typeof auditSinkSchema>;
export type AuditQueueConfig = z.output<typeof auditQueueSchema>;
export type AnomalyConfig = z.output<typeof anomalySchema>;
export type FileSinkConfig = z.output<typeof fileSinkSchema>;
export type SyslogSinkConfig = z.output<typeof syslogSinkSchema>;
export type OtlpSinkConfig = z.output<typeof otlpSinkSchema>;
export type WebhookSinkConfig = z.output<typeof webhookSinkSchema>;
