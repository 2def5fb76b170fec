/**
 * Audit events: every decision on the record. Names are `noun.verb`, past tense; the catalog with
 * every field is docs/events.md. Stages emit through `AuditLog.emit`, which never blocks the
 * request path and never throws; sinks receive batches off the hot path.
 */
export type AuditOutcome = 'success' | 'failure' | 'denied' | 'info';

/**
 * Where a request event carries its per-stage timings (ms, as measured) to the audit log, which
 * adds them, rounded, to `durations` only when audit.stageDurations is on: the request path never
 * builds what the record will not hold. A symbol key: cleaning, sinks and JSON never see it.
 */
export const STAGE_TIMINGS: unique symbol = Symbol('bastion.audit.stageTimings');

export interface AuditEvent {
  /** `noun.verb`, past tense, e.g. `tool.call.denied`. */
  type: string;
  /** ISO-8601 time; filled by the audit log when absent. */
  time?: string;
  outcome: AuditOutcome;
  /** Machine-readable reason (never secret). */
  reason?: string;
  requestId?: string;
  sessionId?: string;
  mount?: string;
  clientIp?: string;
  principal?: { subject: string; issuer: string; clientId?: string | undefined; authMethod: string; tokenId?: string | undefined };
  /** Per-stage timings of a request event (see STAGE_TIMINGS). */
  [STAGE_TIMINGS]?: Readonly<Record<string, number>>;
  /** Event-specific fields. Must never hold a token, key or secret in clear. */
  [field: string]: unknown;
}

export interface AuditLog {
  emit(event: AuditEvent): void;
  /** Resolves when every event emitted so far has been handed to every sink. */
  flush(): Promise<void>;
  close(): Promise<void>;
  /**
   * False while the audit trail cannot take more events under the `block` policy (queue full
   * because a sink is down) or after close(): the server refuses NEW requests with 503
   * `ERR_BASTION_AUDIT_UNAVAILABLE` (fail closed). Absent means always accepting.
   */
  isAccepting?(): boolean;
}

/** What to do when a sink is down long enough to fill the queue. */
export type AuditQueuePolicy = 'block' | 'drop';

export interface AuditSinkStats {
  name: string;
  /** True after a failed write, until a write succeeds. */
  down: boolean;
  consecutiveFailures: number;
  /** Events emitted but not yet written to this sink. */
  lag: number;
  written: number;
  dropped: number;
}

export interface AuditLogStats {
  depth: number;
  maxEvents: number;
  policy: AuditQueuePolicy;
  accepting: boolean;
  emitted: number;
  /** Events refused at emit (queue beyond its hard limit, or log closed). */
  refused: number;
  sinks: AuditSinkStats[];
}

/** Hooks the audit log calls so metrics can follow it (implemented by src/metrics). */
export interface AuditMetricsHooks {
  /** Called once: `read()` gives the current queue depth (read at scrape time, not per event). */
  auditQueueDepth?(read: () => number): void;
  auditWritten?(sink: string, count: number): void;
  auditDropped?(sink: string, count: number): void;
  auditSinkFailed?(sink: string): void;
}

export interface AuditSink {
  readonly name: string;
  /** Write a batch; reject when the sink is down (the queue retries per its policy). */
  write(events: readonly AuditEvent[]): Promise<void>;
  close(): Promise<void>;
}
