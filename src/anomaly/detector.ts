/**
 * Baselines and anomaly decisions. A domain room: it keeps its state behind the StateStore
 * interface, takes time from an injected clock, and returns findings and decisions; the gateway
 * turns findings into `anomaly.detected` events (`anomalyEvent`) and applies the actions.
 *
 * Baselines:
 *  - call rate per subject: an EWMA of calls per window; a window with more than `rateFactor`
 *    times the average (and at least `minCallsPerWindow` calls), after `warmupWindows`, is flagged
 *    once per window;
 *  - tool sequences per subject: pairs (previous tool → tool); after `warmupCalls` a pair never
 *    seen before is flagged;
 *  - parameters per tool: string/boolean arguments with few distinct values are categorical and
 *    a new value is flagged after warm-up (values are stored as short hashes, never in clear);
 *    numeric arguments keep a mean and variance (Welford) and values beyond `zScore` deviations
 *    are flagged; a string with more than `maxCategories` values is free text and not judged;
 *  - upstream latency per tool: an EWMA of mean and variance; an answer slower than `factor`
 *    times the mean and 6 deviations above it (and at least `minMs`) is a spike;
 *  - enumeration: list calls per subject per window, and calls to unknown or hidden tools.
 *
 * Updates of one key are serialized in this process; across replicas (Redis) two concurrent
 * updates of the same baseline may lose one observation, which a statistical baseline tolerates.
 */
import { createHash } from 'node:crypto';
import type { StateStore } from '../stores/types.js';
import type { AnomalyConfig } from '../config/audit.js';
import type { AuditEvent } from '../audit/types.js';
import type { AdmitDecision, AnomalyAction, AnomalyDecision, AnomalyFinding, AnomalyKind, AnomalySeverity, CallObservation, LatencyObservation } from './types.js';

const LIST_METHODS = new Set(['tools/list', 'resources/list', 'resources/templates/list', 'prompts/list']);
const MAX_PARAMS = 32;

interface SubjectState {
  /** Start of the current window (ms). */
  w: number;
  /** Calls in the current window. */
  c: number;
  /** EWMA of calls per window. */
  e: number;
  /** Completed windows folded into e. */
  n: number;
  /** Window in which call_rate already fired. */
  f: number;
  /** Tool calls seen (for sequence warm-up). */
  calls: number;
  last: string | null;
  pairs: string[];
}

interface ParamState {
  k: 'cat' | 'num' | 'free';
  /** Observations of this parameter. */
  n: number;
  vals?: string[];
  mean?: number;
  m2?: number;
}

interface ToolState {
  n: number;
  p: Record<string, ParamState>;
}

interface LatencyState {
  n: number;
  mean: number;
  v: number;
}

export interface AnomalyDetectorOptions {
  store: StateStore;
  config: AnomalyConfig;
  now?: () => number;
}

export interface AnomalyDetector {
  /** Record one request and judge it against the baselines. Never throws on bad input. */
  observeCall(o: CallObservation): Promise<AnomalyDecision>;
  /** Record one upstream answer time and judge it. */
  observeLatency(o: LatencyObservation): Promise<AnomalyDecision>;
  /** Before forwarding: is this subject suspended or throttled? Takes a throttle token when throttled. */
  admit(subject: string): Promise<AdmitDecision>;
  /** Operator action: lift a suspension (and a throttle). */
  reinstate(subject: string): Promise<void>;
  /** Subjects currently suspended (hashed keys). */
  suspended(): Promise<string[]>;
  /** Hashed baseline key of a subject, as it appears in findings. */
  subjectId(subject: string): string;
}

function h(s: string, len = 22): string {
  return createHash('sha256').update(s).digest('base64url').slice(0, len);
}

function severityOfRatio(r: number): AnomalySeverity {
  return r >= 50 ? 'high' : r >= 20 ? 'medium' : 'low';
}

const ACTION_RANK: Record<AnomalyAction, number> = { none: 0, throttle: 1, suspend: 2 };

export function createAnomalyDetector(options: AnomalyDetectorOptions): AnomalyDetector {
  const { store, config } = options;
  const now = options.now ?? Date.now;
  const W = config.windowSeconds * 1000;
  const ttl = config.baselineTtlSeconds * 1000;
  const locks = new Map<string, Promise<unknown>>();

  /** Serialize read-modify-write of one key within this process. */
  function withKey<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = locks.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const settled = next.then(
      () => undefined,
      () => undefined,
    );
    locks.set(key, settled);
    void settled.then(() => {
      if (locks.get(key) === settled) locks.delete(key);
    });
    return next;
  }

  async function readJson<T>(key: string): Promise<T | undefined> {
    const raw = await store.get(key);
    if (raw === undefined) return undefined;
    try {
      return JSON.parse(raw) as T;
    } catch {
      return undefined;
    }
  }

  function actionFor(kind: AnomalyKind): AnomalyAction {
    switch (kind) {
      case 'call_rate':
        return config.actions.callRate;
      case 'enumeration':
      case 'unknown_tool':
        return config.actions.enumeration;
      case 'tool_sequence':
        return config.actions.sequence;
      case 'parameter_value':
      case 'parameter_outlier':
        return config.actions.parameter;
      case 'latency_spike':
        return 'none';
    }
  }

  function finding(kind: AnomalyKind, severity: AnomalySeverity, subject: string | undefined, mount: string, tool: string | undefined, evidence: Record<string, unknown>, time: number): AnomalyFinding {
    return { kind, severity, subject, mount, tool, evidence, action: actionFor(kind), time };
  }

  async function subjectBaselines(id: string, o: CallObservation, t: number, out: AnomalyFinding[]): Promise<void> {
    const key = `anomaly:s:${id}`;
    await withKey(key, async () => {
      const win = Math.floor(t / W) * W;
      const s: SubjectState = (await readJson<SubjectState>(key)) ?? { w: win, c: 0, e: 0, n: 0, f: -1, calls: 0, last: null, pairs: [] };
      if (win > s.w) {
        // Fold the finished window, then any empty ones, into the average.
        s.e = s.n === 0 ? s.c : config.ewmaAlpha * s.c + (1 - config.ewmaAlpha) * s.e;
        s.n++;
        const empty = Math.min(Math.round((win - s.w) / W) - 1, 10_000);
        if (empty > 0) {
          s.e *= (1 - config.ewmaAlpha) ** empty;
          s.n += empty;
        }
        s.w = win;
        s.c = 0;
      }
      s.c++;
      const threshold = config.rateFactor * Math.max(s.e, 1);
      if (s.n >= config.warmupWindows && s.c >= config.minCallsPerWindow && s.c > threshold && s.f !== s.w) {
        s.f = s.w;
        const ratio = s.c / Math.max(s.e, 1e-9);
        out.push(
          finding('call_rate', severityOfRatio(ratio), id, o.mount, o.tool, {
            windowSeconds: config.windowSeconds,
            callsThisWindow: s.c,
            baselinePerWindow: Math.round(s.e * 100) / 100,
            ratio: Math.round(ratio * 10) / 10,
            threshold: Math.ceil(threshold),
            windowsOfHistory: s.n,
          }, t),
        );
      }
      if (o.method === 'tools/call' && typeof o.tool === 'string') {
        const tool = o.tool.slice(0, 128);
        const pair = `${s.last ?? '^'}>${tool}`;
        if (!s.pairs.includes(pair)) {
          if (s.calls >= config.sequence.warmupCalls && s.pairs.length < config.sequence.maxPairs) {
            const newTool = !s.pairs.some((p) => p.endsWith(`>${tool}`));
            out.push(
              finding('tool_sequence', newTool ? 'medium' : 'low', id, o.mount, tool, {
                previousTool: s.last,
                tool,
                newTool,
                knownPairs: s.pairs.length,
                callsOfHistory: s.calls,
              }, t),
            );
          }
          if (s.pairs.length < config.sequence.maxPairs) s.pairs.push(pair);
        }
        s.last = tool;
        s.calls++;
      }
      await store.set(key, JSON.stringify(s), ttl);
    });
  }

  async function windowCounter(prefix: string, id: string, t: number): Promise<number> {
    const win = Math.floor(t / W);
    return store.increment(`anomaly:${prefix}:${id}:${win}`, 1, W * 2);
  }

  async function enumeration(id: string, o: CallObservation, t: number, out: AnomalyFinding[]): Promise<void> {
    if (LIST_METHODS.has(o.method)) {
      const c = await windowCounter('list', id, t);
      if (c === config.enumeration.listCallsPerWindow) {
        out.push(finding('enumeration', 'medium', id, o.mount, undefined, { listCallsThisWindow: c, threshold: config.enumeration.listCallsPerWindow, windowSeconds: config.windowSeconds, method: o.method }, t));
      }
    }
    if (o.known === false) {
      const c = await windowCounter('unk', id, t);
      if (c === config.enumeration.unknownToolCallsPerWindow) {
        out.push(
          finding('unknown_tool', 'high', id, o.mount, o.tool?.slice(0, 128), { unknownToolCallsThisWindow: c, threshold: config.enumeration.unknownToolCallsPerWindow, windowSeconds: config.windowSeconds }, t),
        );
      }
    }
  }

  async function parameters(id: string, o: CallObservation, t: number, out: AnomalyFinding[]): Promise<void> {
    if (o.method !== 'tools/call' || typeof o.tool !== 'string' || o.known === false) return;
    const args = o.args;
    if (args === undefined || args === null || typeof args !== 'object' || Array.isArray(args)) return;
    const tool = o.tool.slice(0, 128);
    const key = `anomaly:p:${h(`${o.mount}\0${tool}`)}`;
    const P = config.parameters;
    await withKey(key, async () => {
      const st: ToolState = (await readJson<ToolState>(key)) ?? { n: 0, p: {} };
      st.n++;
      for (const [name, v] of Object.entries(args).slice(0, 64)) {
        const pname = name.slice(0, 64);
        let ps = st.p[pname];
        if (ps === undefined) {
          if (Object.keys(st.p).length >= MAX_PARAMS) continue;
          if (typeof v === 'number' && Number.isFinite(v)) ps = { k: 'num', n: 0, mean: 0, m2: 0 };
          else if (typeof v === 'string' || typeof v === 'boolean') ps = { k: 'cat', n: 0, vals: [] };
          else continue;
          st.p[pname] = ps;
        }
        if (ps.k === 'free') continue;
        if (ps.k === 'cat' && (typeof v === 'string' || typeof v === 'boolean')) {
          const s = String(v);
          const vh = h(`${tool}\0${pname}\0${s}`, 12);
          const vals = (ps.vals ??= []);
          if (!vals.includes(vh)) {
            if (vals.length >= P.maxCategories) {
              ps.k = 'free';
              delete ps.vals;
              continue;
            }
            if (ps.n >= P.warmupObservations) {
              out.push(finding('parameter_value', 'medium', id, o.mount, tool, { parameter: pname, valueHash: vh, valueLength: s.length, knownValues: vals.length, observations: ps.n }, t));
            }
            vals.push(vh);
          }
          ps.n++;
        } else if (ps.k === 'num' && typeof v === 'number' && Number.isFinite(v)) {
          const mean = ps.mean ?? 0;
          const m2 = ps.m2 ?? 0;
          if (ps.n >= P.warmupObservations) {
            const sd = ps.n > 1 ? Math.sqrt(m2 / (ps.n - 1)) : 0;
            const dev = Math.abs(v - mean);
            const outlier = sd > 0 ? dev / sd > P.zScore : dev > Math.max(1, Math.abs(mean));
            if (outlier) {
              out.push(
                finding('parameter_outlier', sd > 0 && dev / sd > P.zScore * 3 ? 'high' : 'medium', id, o.mount, tool, {
                  parameter: pname,
                  value: v,
                  mean: Math.round(mean * 1000) / 1000,
                  stddev: Math.round(sd * 1000) / 1000,
                  zScore: sd > 0 ? Math.round((dev / sd) * 10) / 10 : null,
                  observations: ps.n,
                }, t),
              );
            }
          }
          ps.n++;
          const d = v - mean;
          ps.mean = mean + d / ps.n;
          ps.m2 = m2 + d * (v - ps.mean);
        }
      }
      await store.set(key, JSON.stringify(st), ttl);
    });
  }

  async function applyActions(findings: AnomalyFinding[], id: string | undefined, t: number): Promise<AnomalyAction> {
    let action: AnomalyAction = 'none';
    for (const f of findings) if (ACTION_RANK[f.action] > ACTION_RANK[action]) action = f.action;
    if (id === undefined || action === 'none') return action;
    const top = findings.find((f) => f.action === action)!;
    if (action === 'suspend') {
      await store.set(`anomaly:suspended:${id}`, JSON.stringify({ since: t, kind: top.kind }));
    } else {
      await store.set(`anomaly:throttle:${id}`, JSON.stringify({ since: t, kind: top.kind }), config.throttle.durationSeconds * 1000);
    }
    return action;
  }

  const detector: AnomalyDetector = {
    subjectId: (subject) => h(`subject\0${subject}`),

    async observeCall(o) {
      const findings: AnomalyFinding[] = [];
      if (!config.enabled) return { findings, action: 'none' };
      const t = o.time ?? now();
      const id = detector.subjectId(o.subject);
      await subjectBaselines(id, o, t, findings);
      await enumeration(id, o, t, findings);
      await parameters(id, o, t, findings);
      return { findings, action: await applyActions(findings, id, t) };
    },

    async observeLatency(o) {
      const findings: AnomalyFinding[] = [];
      if (!config.enabled || !Number.isFinite(o.ms) || o.ms < 0) return { findings, action: 'none' };
      const t = o.time ?? now();
      const tool = o.tool?.slice(0, 128);
      const key = `anomaly:l:${h(`${o.mount}\0${tool ?? ''}`)}`;
      const L = config.latency;
      await withKey(key, async () => {
        const s: LatencyState = (await readJson<LatencyState>(key)) ?? { n: 0, mean: 0, v: 0 };
        if (s.n >= L.warmupObservations) {
          const sd = Math.sqrt(s.v);
          if (o.ms >= L.minMs && o.ms > L.factor * s.mean && o.ms > s.mean + 6 * sd) {
            findings.push(
              finding('latency_spike', o.ms > 3 * L.factor * s.mean ? 'high' : 'medium', undefined, o.mount, tool, {
                ms: Math.round(o.ms),
                meanMs: Math.round(s.mean * 10) / 10,
                stddevMs: Math.round(sd * 10) / 10,
                factor: L.factor,
                observations: s.n,
              }, t),
            );
          }
        }
        const a = s.n === 0 ? 1 : Math.max(0.05, 1 / (s.n + 1));
        const d = o.ms - s.mean;
        s.mean += a * d;
        s.v = (1 - a) * (s.v + a * d * d);
        s.n++;
        await store.set(key, JSON.stringify(s), ttl);
      });
      return { findings, action: 'none' };
    },

    async admit(subject) {
      const id = detector.subjectId(subject);
      const sus = await readJson<{ since: number; kind: string }>(`anomaly:suspended:${id}`);
      if (sus) return { admit: false, why: 'suspended', since: sus.since, kind: sus.kind };
      if ((await store.get(`anomaly:throttle:${id}`)) !== undefined) {
        const r = await store.takeToken(`anomaly:bucket:${id}`, { ratePerSecond: config.throttle.ratePerSecond, burst: config.throttle.burst });
        if (!r.allowed) return { admit: false, why: 'throttled', retryAfterMs: r.retryAfterMs };
      }
      return { admit: true };
    },

    async reinstate(subject) {
      const id = subject.length === 22 && /^[A-Za-z0-9_-]+$/.test(subject) && (await store.get(`anomaly:suspended:${subject}`)) !== undefined ? subject : detector.subjectId(subject);
      await store.delete(`anomaly:suspended:${id}`);
      await store.delete(`anomaly:throttle:${id}`);
    },

    async suspended() {
      return (await store.keys('anomaly:suspended:')).map((k) => k.slice('anomaly:suspended:'.length));
    },
  };
  return detector;
}

export interface AnomalyEventContext {
  requestId?: string | undefined;
  sessionId?: string | undefined;
  mount?: string | undefined;
  clientIp?: string | undefined;
  principal?: AuditEvent['principal'];
}

/** The `anomaly.detected` audit event for a finding. */
export function anomalyEvent(f: AnomalyFinding, ctx: AnomalyEventContext = {}): AuditEvent {
  const e: AuditEvent = {
    type: 'anomaly.detected',
    time: new Date(f.time).toISOString(),
    outcome: 'info',
    reason: f.kind,
    kind: f.kind,
    severity: f.severity,
    mount: ctx.mount ?? f.mount,
    evidence: f.evidence,
    action: f.action,
  };
  if (f.subject !== undefined) e.subject = f.subject;
  if (f.tool !== undefined) e.tool = f.tool;
  if (ctx.requestId !== undefined) e.requestId = ctx.requestId;
  if (ctx.sessionId !== undefined) e.sessionId = ctx.sessionId;
  if (ctx.clientIp !== undefined) e.clientIp = ctx.clientIp;
  if (ctx.principal !== undefined) e.principal = ctx.principal;
  return e;
}
