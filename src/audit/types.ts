/**
 * Audit events: every decision on the record. Names are `noun.verb`, past tense; the catalog with
 * every field is docs/events.md. Stages emit through `AuditLog.emit`, which never blocks the
 * request path and never throws; sinks receive batches off the hot path.
 */
export type AuditOutcome = 'success' | 'failure' | 'denied' | 'info';

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
  /** Event-specific fields. Must never hold a token, key or secret in clear. */
  [field: string]: unknown;
}

export interface AuditLog {
  emit(event: AuditEvent): void;
  /** Resolves when every event emitted so far has been handed to every sink. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export interface AuditSink {
  readonly name: string;
  /** Write a batch; reject when the sink is down (the queue retries per its policy). */
  write(events: readonly AuditEvent[]): Promise<void>;
  close(): Promise<void>;
}
