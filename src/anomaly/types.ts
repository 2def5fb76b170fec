/** Anomaly detection: what the gateway tells the detector, and the decisions it gets back. */

export type AnomalyKind =
  | 'call_rate'
  | 'tool_sequence'
  | 'parameter_value'
  | 'parameter_outlier'
  | 'latency_spike'
  | 'enumeration'
  | 'unknown_tool';

export type AnomalySeverity = 'low' | 'medium' | 'high';
export type AnomalyAction = 'none' | 'throttle' | 'suspend';

/** One client request, as seen after identity (so the subject is known). */
export interface CallObservation {
  /**
   * Baseline key of the caller: the principal's tokenHash when there is one, else its principal
   * key. Hashed again before storage; never the raw token.
   */
  subject: string;
  mount: string;
  /** JSON-RPC method: `tools/call`, `tools/list`, `resources/read`, ... */
  method: string;
  /** Tool name for tools/call. */
  tool?: string | undefined;
  /** Tool arguments (top level is judged; values are hashed before storage). */
  args?: Readonly<Record<string, unknown>> | undefined;
  /**
   * False when the tool is unknown upstream or hidden from this caller by policy (a probe).
   * Undefined when not known.
   */
  known?: boolean | undefined;
  /** Milliseconds since epoch; default the detector's clock. */
  time?: number | undefined;
}

export interface LatencyObservation {
  mount: string;
  tool?: string | undefined;
  ms: number;
  time?: number | undefined;
}

export interface AnomalyFinding {
  kind: AnomalyKind;
  severity: AnomalySeverity;
  /** Hashed baseline key (safe to log). */
  subject: string | undefined;
  mount: string;
  tool: string | undefined;
  /** The numbers behind the finding. */
  evidence: Record<string, unknown>;
  /** Automatic response configured for this kind. */
  action: AnomalyAction;
  time: number;
}

export interface AnomalyDecision {
  findings: AnomalyFinding[];
  /** Strongest action among the findings. */
  action: AnomalyAction;
}

/** Whether a caller may proceed, checked before a request is forwarded. */
export type AdmitDecision =
  | { admit: true }
  | { admit: false; why: 'suspended'; since: number; kind: string }
  | { admit: false; why: 'throttled'; retryAfterMs: number };
