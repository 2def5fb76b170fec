/**
 * The audit log: `emit()` on the request path is synchronous, O(1), never throws and never waits;
 * a bounded in-memory queue drains to every sink in batches off the hot path.
 *
 * Each sink has its own cursor into the one queue, so a sink that is down does not hold back the
 * others, and it gets every event it missed when it recovers (the failed batch is retried as is,
 * with exponential backoff). When a down sink makes the queue reach `maxEvents`:
 *  - `block` (fail closed): `isAccepting()` turns false and the server refuses new requests with
 *    503 ERR_BASTION_AUDIT_UNAVAILABLE. In-flight requests still emit (a reserve above
 *    `maxEvents` takes them); only past that reserve is an event lost, counted and logged.
 *  - `drop`: the oldest event is dropped for the lagging sink(s) only, counted per sink, logged
 *    loudly, and the sink writes an `audit.events.dropped` record in its place so the gap is on
 *    the record.
 * Scrubbing (secrets) and summarizing (large values) happen once per event when the first sink
 * takes it, never at emit.
 */
import { randomUUID } from 'node:crypto';
import { BastionError } from '../errors.js';
import { cleanFieldsForAudit, REDACTED } from './redact.js';
import { redactTreeForLog } from '../sanitizer/arguments.js';
import { isKnownEventType } from './events.js';
import { STAGE_TIMINGS, type AuditEvent, type AuditLog, type AuditLogStats, type AuditMetricsHooks, type AuditQueuePolicy, type AuditSink } from './types.js';
import { roundMs } from './request.js';

/** Thrown by a sink for a batch it will never accept (e.g. HTTP 400): dropped, not retried. */
export class SinkRejectedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SinkRejectedError';
  }
}

export interface AuditLogger {
  error(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface RetryOptions {
  initialDelayMs: number;
  maxDelayMs: number;
}

export interface SinkEntry {
  sink: AuditSink;
  batchSize?: number;
  retry?: Partial<RetryOptions>;
}

export interface AuditLogOptions {
  sinks: ReadonlyArray<AuditSink | SinkEntry>;
  queue?: { maxEvents?: number; onFull?: AuditQueuePolicy };
  logger?: AuditLogger;
  metrics?: AuditMetricsHooks;
  /** Clock for event times (ms since epoch). */
  now?: () => number;
  /** Minimum ms between two repeated error logs of the same kind (default 10 s). */
  logIntervalMs?: number;
  /**
   * Add the per-stage milliseconds a request event carries (STAGE_TIMINGS) to its `durations`
   * (default true). false: `durations` holds what the event gave, its `total` (audit.stageDurations;
   * createAuditFromConfig decides the config's default).
   */
  stageDurations?: boolean;
}

export interface BastionAuditLog extends AuditLog {
  isAccepting(): boolean;
  /** Resolves when every event emitted so far is written to every sink, or after `timeoutMs`. */
  flush(timeoutMs?: number): Promise<void>;
  /** Stop accepting, drain (up to `timeoutMs`, default 10 s), close the sinks. */
  close(timeoutMs?: number): Promise<void>;
  stats(): AuditLogStats;
}

interface Entry {
  raw: AuditEvent;
  at: number;
  prepared?: AuditEvent;
}

interface Pending {
  events: AuditEvent[];
  end: number;
  dropsNoted: number;
}

interface Runner {
  sink: AuditSink;
  batchSize: number;
  retry: RetryOptions;
  /** Absolute sequence of the next event not yet written. */
  cursor: number;
  pending: Pending | undefined;
  busy: boolean;
  timer: NodeJS.Timeout | undefined;
  failures: number;
  down: boolean;
  written: number;
  dropped: number;
  dropsPending: number;
  lastLog: number;
}

const NOOP_LOGGER: AuditLogger = { error() {}, warn() {}, info() {} };

/** The error the server turns into a 503 when `isAccepting()` is false. */
export function auditUnavailableError(): BastionError {
  return new BastionError(
    'ERR_BASTION_AUDIT_UNAVAILABLE',
    'The audit trail cannot record requests right now, so the gateway refuses them (fail closed). Retry later.',
    { headers: { 'Retry-After': '5' }, reason: 'audit_unavailable' },
  );
}

/** Depth allows for envelope + args nesting; top-level event fields are few. */
const EVENT_LIMITS = { maxString: 512, maxArray: 32, maxKeys: 64, maxDepth: 8 };

/** isoTime: the second last formatted, as `YYYY-MM-DDTHH:mm:ss.` */
let isoSecond = NaN;
let isoPrefix = '';

/**
 * `new Date(at).toISOString()`, formatting the date and time once per second: events of the same
 * second differ only in the milliseconds (the full formatting costs about as much as scrubbing
 * an event's strings).
 */
export function isoTime(at: number): string {
  if (!Number.isInteger(at) || at < 0 || at > 8.64e15) return new Date(at).toISOString();
  const ms = at % 1000;
  const second = at - ms;
  if (second !== isoSecond) {
    isoPrefix = new Date(second).toISOString().slice(0, -4);
    isoSecond = second;
  }
  return `${isoPrefix}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z`;
}

/** Marks an envelope field the event did not set (any value the event set, even undefined, differs). */
const UNSET: unique symbol = Symbol('unset');

/**
 * Turn an emitted event into what sinks write: secrets scrubbed, large values summarized, id and
 * time set. Field order: type, id, time, outcome, then the event's other fields in its order.
 */
export function prepareEvent(raw: AuditEvent, at: number, options: { stageDurations?: boolean } = {}): AuditEvent {
  const stages = raw[STAGE_TIMINGS];
  if (stages !== undefined && options.stageDurations !== false) raw = withStageDurations(raw, stages);
  // The envelope keys go in first so the cleaned fields land after them (an event's own `id` keeps
  // the second place): one object, not a cleaned copy and then an envelope copy of it.
  const out = cleanFieldsForAudit(raw, { type: UNSET, id: UNSET, time: UNSET, outcome: UNSET }, EVENT_LIMITS);
  const { type, id, time, outcome } = out;
  out.type = typeof type === 'string' ? type : 'unknown';
  if (id === UNSET) out.id = randomUUID();
  out.time = typeof time === 'string' ? time : isoTime(at);
  out.outcome = outcome === UNSET ? 'info' : (outcome ?? 'info');
  // Tool arguments come from the client: besides the generic scrub above, they go through the
  // output sanitizer's secret detectors (cloud and SaaS key formats, webhooks, PEM bodies,
  // high-entropy values), the same ones that redact tool results. The cleaned value is already
  // bounded (strings cut and hashed past maxString), so nothing is cut here, and it is a tree
  // (fresh copies, cycles already replaced), so the walk keeps no record of what it visited.
  if (out.args !== undefined && out.args !== null) {
    out.args = redactTreeForLog(out.args, { maxString: Infinity, maxDepth: EVENT_LIMITS.maxDepth + 1, maxItems: Infinity, keyPlaceholder: REDACTED });
  }
  return out as AuditEvent;
}

/** The event with each stage's milliseconds (rounded) in `durations`, before its `total`. */
function withStageDurations(raw: AuditEvent, stages: Readonly<Record<string, number>>): AuditEvent {
  const d: Record<string, unknown> = {};
  for (const k in stages) d[k] = roundMs(stages[k]!);
  const given = raw.durations;
  if (given !== null && typeof given === 'object' && !Array.isArray(given)) Object.assign(d, given);
  return { ...raw, durations: d };
}

class QueueAuditLog implements BastionAuditLog {
  private readonly entries: Entry[] = [];
  /** Index in `entries` of the event with absolute sequence `base`. */
  private head = 0;
  private base = 0;
  private tail = 0;
  private readonly maxEvents: number;
  private readonly hardMax: number;
  private readonly policy: AuditQueuePolicy;
  private readonly runners: Runner[];
  private readonly logger: AuditLogger;
  private readonly metrics: AuditMetricsHooks;
  private readonly now: () => number;
  private readonly logIntervalMs: number;
  private scheduled = false;
  private readonly prepareOptions: { stageDurations: boolean };
  private closed = false;
  private refused = 0;
  private lastRefusedLog = -Infinity;
  private lastFullLog = -Infinity;
  private readonly unknownTypes = new Set<string>();
  private waiters: Array<{ target: number; resolve: () => void }> = [];

  constructor(options: AuditLogOptions) {
    this.maxEvents = Math.max(1, options.queue?.maxEvents ?? 10_000);
    this.policy = options.queue?.onFull ?? 'block';
    this.hardMax = this.policy === 'block' ? this.maxEvents + Math.max(100, Math.ceil(this.maxEvents / 10)) : this.maxEvents;
    this.logger = options.logger ?? NOOP_LOGGER;
    this.metrics = options.metrics ?? {};
    this.now = options.now ?? Date.now;
    this.logIntervalMs = options.logIntervalMs ?? 10_000;
    this.prepareOptions = { stageDurations: options.stageDurations ?? true };
    this.runners = options.sinks.map((s) => {
      const entry: SinkEntry = 'write' in s ? { sink: s } : s;
      return {
        sink: entry.sink,
        batchSize: Math.max(1, entry.batchSize ?? 256),
        retry: { initialDelayMs: entry.retry?.initialDelayMs ?? 200, maxDelayMs: entry.retry?.maxDelayMs ?? 30_000 },
        cursor: 0,
        pending: undefined,
        busy: false,
        timer: undefined,
        failures: 0,
        down: false,
        written: 0,
        dropped: 0,
        dropsPending: 0,
        lastLog: -Infinity,
      };
    });
    this.metrics.auditQueueDepth?.(() => this.depth());
  }

  private depth(): number {
    let min = this.tail;
    for (const r of this.runners) if (r.cursor < min) min = r.cursor;
    return this.tail - Math.max(min, this.base);
  }

  isAccepting(): boolean {
    if (this.closed) return false;
    return this.policy === 'drop' || this.depth() < this.maxEvents;
  }

  emit(event: AuditEvent): void {
    try {
      if (this.closed) {
        this.refuse('closed', event);
        return;
      }
      if (this.runners.length === 0) return;
      if (this.tail - this.base >= this.hardMax) {
        if (this.policy === 'drop') this.dropOldest();
        else {
          this.refuse('full', event);
          return;
        }
      }
      this.entries.push({ raw: { ...event }, at: this.now() });
      this.tail++;
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.pump);
      }
    } catch {
      // emit never throws: an event that cannot even be queued is counted.
      this.refused++;
    }
  }

  private refuse(why: 'closed' | 'full', event: AuditEvent): void {
    this.refused++;
    for (const r of this.runners) {
      r.dropped++;
      this.metrics.auditDropped?.(r.sink.name, 1);
    }
    const t = this.now();
    if (t - this.lastRefusedLog >= this.logIntervalMs) {
      this.lastRefusedLog = t;
      this.logger.error(
        { type: event.type, refused: this.refused, reason: why },
        why === 'closed'
          ? 'AUDIT EVENT LOST: event emitted after the audit log was closed'
          : 'AUDIT EVENT LOST: audit queue is beyond its limit while a sink is down; new requests are being refused (503) but in-flight requests overflowed the reserve',
      );
    }
  }

  /** `drop` policy: make room by dropping the oldest event for every sink that has not taken it. */
  private dropOldest(): void {
    const seq = this.base;
    const losers: string[] = [];
    for (const r of this.runners) {
      const covered = r.pending ? r.pending.end : r.cursor;
      if (covered <= seq) {
        r.dropped++;
        r.dropsPending++;
        losers.push(r.sink.name);
        this.metrics.auditDropped?.(r.sink.name, 1);
      }
    }
    this.entries[this.head] = undefined as unknown as Entry;
    this.head++;
    this.base++;
    this.compact();
    const t = this.now();
    if (t - this.lastFullLog >= this.logIntervalMs) {
      this.lastFullLog = t;
      this.logger.error(
        { sinks: losers, maxEvents: this.maxEvents, dropped: this.runners.map((r) => ({ sink: r.sink.name, dropped: r.dropped })) },
        'AUDIT EVENTS DROPPED: audit queue is full because a sink is down (policy onFull: drop); fix the sink or set audit.queue.onFull: block to fail closed',
      );
    }
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries.splice(0, this.head);
      this.head = 0;
    }
  }

  private readonly pump = (): void => {
    this.scheduled = false;
    for (const r of this.runners) if (!r.busy && r.timer === undefined) void this.run(r);
  };

  private prepared(seq: number): AuditEvent {
    const e = this.entries[this.head + (seq - this.base)]!;
    if (e.prepared === undefined) {
      try {
        e.prepared = prepareEvent(e.raw, e.at, this.prepareOptions);
      } catch (err) {
        // An event that cannot be cleaned (e.g. a throwing getter deep in it) must not stop the
        // drain: its place on the record says so, with none of its content.
        e.prepared = prepareEvent({ type: typeof e.raw.type === 'string' ? e.raw.type : 'unknown', outcome: 'failure', reason: 'audit_event_unreadable', detail: err instanceof Error ? err.name : 'error' }, e.at);
      }
      if (!isKnownEventType(e.prepared.type) && !this.unknownTypes.has(e.prepared.type) && this.unknownTypes.size < 100) {
        this.unknownTypes.add(e.prepared.type);
        this.logger.warn({ type: e.prepared.type }, 'audit event type is not in the catalog (src/audit/events.ts, docs/events.md)');
      }
    }
    return e.prepared;
  }

  private takeBatch(r: Runner): Pending | undefined {
    if (r.cursor < this.base) r.cursor = this.base;
    if (r.cursor >= this.tail) return undefined;
    const end = Math.min(this.tail, r.cursor + r.batchSize);
    const events: AuditEvent[] = [];
    const dropsNoted = r.dropsPending;
    if (dropsNoted > 0) {
      events.push(
        prepareEvent({ type: 'audit.events.dropped', outcome: 'failure', reason: 'queue_full', count: dropsNoted, sink: r.sink.name }, this.now()),
      );
    }
    for (let seq = r.cursor; seq < end; seq++) events.push(this.prepared(seq));
    return { events, end, dropsNoted };
  }

  private async run(r: Runner): Promise<void> {
    if (r.busy) return;
    r.busy = true;
    try {
      for (;;) {
        r.pending ??= this.takeBatch(r);
        const p = r.pending;
        if (p === undefined) break;
        try {
          await r.sink.write(p.events);
        } catch (err) {
          if (err instanceof SinkRejectedError) {
            r.dropped += p.events.length;
            this.metrics.auditDropped?.(r.sink.name, p.events.length);
            this.logger.error({ sink: r.sink.name, events: p.events.length, err: err.message }, 'AUDIT EVENTS DROPPED: the sink rejected a batch permanently');
            this.advance(r, p);
            continue;
          }
          this.failed(r, err);
          return;
        }
        r.written += p.events.length;
        this.metrics.auditWritten?.(r.sink.name, p.events.length);
        this.advance(r, p);
        if (r.down) {
          r.down = false;
          this.logger.info({ sink: r.sink.name, afterFailures: r.failures }, 'audit sink recovered; delivering the events it missed');
        }
        r.failures = 0;
      }
    } finally {
      r.busy = false;
    }
  }

  private advance(r: Runner, p: Pending): void {
    r.cursor = Math.max(r.cursor, p.end);
    r.dropsPending -= p.dropsNoted;
    r.pending = undefined;
    this.trim();
    this.resolveWaiters();
  }

  private failed(r: Runner, err: unknown): void {
    r.failures++;
    r.down = true;
    this.metrics.auditSinkFailed?.(r.sink.name);
    const delay = Math.min(r.retry.maxDelayMs, r.retry.initialDelayMs * 2 ** Math.min(r.failures - 1, 30));
    const t = this.now();
    if (r.failures === 1 || t - r.lastLog >= this.logIntervalMs) {
      r.lastLog = t;
      this.logger.error(
        { sink: r.sink.name, failures: r.failures, retryInMs: delay, lag: this.tail - r.cursor, err: err instanceof Error ? err.message : String(err) },
        'audit sink is down; events are held in the queue and retried',
      );
    }
    if (this.finished) return;
    r.timer = setTimeout(() => {
      r.timer = undefined;
      void this.run(r);
    }, delay);
    // Not unref'd: undelivered audit events are a reason to stay alive; close() clears it.
  }

  private trim(): void {
    let min = this.tail;
    for (const r of this.runners) if (r.cursor < min) min = r.cursor;
    while (this.base < min) {
      this.entries[this.head] = undefined as unknown as Entry;
      this.head++;
      this.base++;
    }
    this.compact();
  }

  private written(target: number): boolean {
    return this.runners.every((r) => r.cursor >= target);
  }

  private resolveWaiters(): void {
    if (this.waiters.length === 0) return;
    const keep: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (this.written(w.target)) w.resolve();
      else keep.push(w);
    }
    this.waiters = keep;
  }

  flush(timeoutMs?: number): Promise<void> {
    const target = this.tail;
    if (this.written(target)) return Promise.resolve();
    if (!this.scheduled) this.pump();
    return new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        if (timer) clearTimeout(timer);
        resolve();
      };
      this.waiters.push({ target, resolve: done });
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.waiters = this.waiters.filter((w) => w.resolve !== done);
          resolve();
        }, timeoutMs);
        timer.unref();
      }
    });
  }

  private closing: Promise<void> | undefined;
  private finished = false;

  close(timeoutMs = 10_000): Promise<void> {
    this.closing ??= this.doClose(timeoutMs);
    return this.closing;
  }

  private async doClose(timeoutMs: number): Promise<void> {
    this.closed = true;
    // A sink waiting out a backoff gets one immediate attempt.
    for (const r of this.runners) {
      if (r.timer !== undefined) {
        clearTimeout(r.timer);
        r.timer = undefined;
        void this.run(r);
      }
    }
    await this.flush(timeoutMs);
    this.finished = true;
    for (const r of this.runners) {
      if (r.timer !== undefined) clearTimeout(r.timer);
      r.timer = undefined;
      const lost = this.tail - r.cursor;
      if (lost > 0) {
        r.dropped += lost;
        this.metrics.auditDropped?.(r.sink.name, lost);
        this.logger.error({ sink: r.sink.name, events: lost }, 'AUDIT EVENTS LOST at shutdown: the sink did not accept them in time');
      }
    }
    await Promise.all(
      this.runners.map(async (r) => {
        try {
          await r.sink.close();
        } catch (err) {
          this.logger.error({ sink: r.sink.name, err: err instanceof Error ? err.message : String(err) }, 'audit sink failed to close cleanly');
        }
      }),
    );
  }

  stats(): AuditLogStats {
    return {
      depth: this.depth(),
      maxEvents: this.maxEvents,
      policy: this.policy,
      accepting: this.isAccepting(),
      emitted: this.tail,
      refused: this.refused,
      sinks: this.runners.map((r) => ({
        name: r.sink.name,
        down: r.down,
        consecutiveFailures: r.failures,
        lag: this.tail - r.cursor,
        written: r.written,
        dropped: r.dropped,
      })),
    };
  }
}

export function createAuditLog(options: AuditLogOptions): BastionAuditLog {
  return new QueueAuditLog(options);
}
