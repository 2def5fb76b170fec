/** Types of the posture scanner (`bastion scan server`). The JSON report is a contract (docs/scan.md). */

export type ScanSeverity = 'critical' | 'high' | 'medium' | 'low' | 'info';
export type LayerName = 'transport' | 'identity' | 'authorization' | 'tools';
export type Grade = 'A' | 'B' | 'C' | 'D' | 'E' | 'F';

export const LAYERS: readonly LayerName[] = ['transport', 'identity', 'authorization', 'tools'];
export const SEVERITIES: readonly ScanSeverity[] = ['critical', 'high', 'medium', 'low', 'info'];
export const SEVERITY_RANK: Readonly<Record<ScanSeverity, number>> = { info: 0, low: 1, medium: 2, high: 3, critical: 4 };

export interface PostureFinding {
  /** Stable id, `<layer>.<check>` (e.g. `transport.tls-legacy`), per definition for tool findings. */
  id: string;
  severity: ScanSeverity;
  title: string;
  /** The hardening control violated: a `name` from CONTROLS (src/scan/controls.ts). */
  control: string;
  evidence: string;
  fix: string;
}

export interface LayerReport {
  grade: Grade;
  findings: PostureFinding[];
  /** Checks that passed (shown in text and HTML; not part of the JSON contract). */
  passed: string[];
}

export interface PostureReport {
  target: string;
  grade: Grade;
  layers: Record<LayerName, LayerReport>;
}

export interface HttpTarget {
  kind: 'http';
  url: URL;
}

export interface StdioTarget {
  kind: 'stdio';
  command: string;
  args: string[];
  env?: Record<string, string>;
  cwd?: string;
}

export type ScanTarget = HttpTarget | StdioTarget;

export interface ScanServerOptions {
  /** Bearer token for authenticated servers (never printed). */
  token?: string;
  /** Extra trusted CA certificates (PEM) for an https target. */
  ca?: string | Buffer;
  /** A lockfile to compare the definitions with (rug pulls). */
  lockfile?: string;
  /** The server name in the lockfile (default: its only server). */
  lockfileServer?: string;
  /** Per-request timeout, ms (default 10 000). */
  timeoutMs?: number;
  /** Progress lines (the CLI prints them on stderr when it is a terminal). */
  onProgress?: (message: string) => void;
}

/** What a layer's checks produce before grading. */
export interface LayerResult {
  findings: PostureFinding[];
  passed: string[];
}

export function emptyLayer(): LayerResult {
  return { findings: [], passed: [] };
}
