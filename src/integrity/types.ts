/**
 * Types of the tool-integrity layer: definitions, pins, the lockfile, scan findings, and the
 * state-store key contract shared by the gateway (runtime) and the `bastion pin` command.
 *
 * This file imports nothing of the project (room rule for types.ts).
 */

/** The three kinds of model-visible definitions an upstream lists. */
export type DefinitionKind = 'tool' | 'prompt' | 'resourceTemplate';

export const DEFINITION_KINDS: readonly DefinitionKind[] = ['tool', 'prompt', 'resourceTemplate'];

/** A definition as an upstream sent it (hostile: fields are checked before use). */
export type RawDefinition = Record<string, unknown>;

/** Per-server pinning mode. */
export type IntegrityMode = 'strict' | 'tofu' | 'off';
/** Per-server scan policy. */
export type ScanPolicy = 'block' | 'warn' | 'off';

export type Severity = 'critical' | 'high' | 'medium' | 'low';
export type Verdict = 'block' | 'warn' | 'pass';

export interface Finding {
  /** Stable rule id, e.g. `hidden-instruction-marker`. */
  rule: string;
  severity: Severity;
  /** What the rule means, for a person. */
  message: string;
  /** The offending excerpt (control characters shown escaped, at most ~160 characters). */
  evidence: string;
  /** Where in the definition: `description`, `inputSchema.properties.path.description`, `name`, ... */
  path: string;
}

export interface ScanResult {
  kind: DefinitionKind | 'server';
  name: string;
  verdict: Verdict;
  findings: Finding[];
}

/** One approved definition. */
export interface Pin {
  kind: DefinitionKind;
  name: string;
  /** `sha256:` + hex SHA-256 of the RFC 8785 canonical form of the identity fields. */
  hash: string;
  /** The identity fields as approved (for readable diffs). */
  definition: Record<string, unknown>;
  /** ISO-8601. */
  approvedAt: string;
  /** Who approved: `user@host` for the CLI, `tofu` for first sight, `manifest:<signer>` for a signed manifest. */
  approvedBy: string;
}

export interface LockfileServer {
  /** Highest signed-manifest version accepted for this server (downgrade protection). */
  manifestVersion?: string | undefined;
  /** Keyed by `kind:name` (see pinKey). */
  pins: Record<string, Pin>;
}

/** `bastion.lock.json`: reviewable in pull requests, written with sorted keys. */
export interface Lockfile {
  lockfileVersion: 1;
  servers: Record<string, LockfileServer>;
}

/** A definition the gateway saw but held back (new, changed, blocked by the scan, unsigned). */
export interface PendingDefinition {
  server: string;
  kind: DefinitionKind;
  name: string;
  hash: string;
  /** The identity fields as the upstream sent them now. */
  definition: Record<string, unknown>;
  status: HoldStatus;
  /** Readable diff against the pin, for `changed`. */
  diff?: string | undefined;
  findings: Finding[];
  /** ISO-8601, last time the gateway saw this version. */
  seenAt: string;
}

export type HoldStatus = 'new' | 'changed' | 'blocked-by-scan' | 'unsigned';

/** A runtime revocation: overrides a lockfile pin until the lockfile itself drops it. */
export interface RevokedMarker {
  revoked: true;
  kind: DefinitionKind;
  name: string;
  revokedAt: string;
  revokedBy: string;
}

export function pinKey(kind: DefinitionKind, name: string): string {
  return `${kind}:${name}`;
}

/**
 * The state-store key contract (runtime pins, pending definitions, manifest versions).
 * Values are JSON. Server names match /^[a-z0-9][a-z0-9_-]{0,62}$/ so `:` separates safely;
 * definition names are taken verbatim after the kind.
 *
 * - `bastion:integrity:pin:SERVER:KIND:NAME`     → Pin | RevokedMarker (no TTL). A Pin here
 *   approves that hash at runtime (CLI approve with a shared store, TOFU, admin API); a
 *   RevokedMarker overrides a lockfile pin.
 * - `bastion:integrity:pending:SERVER:KIND:NAME` → PendingDefinition (TTL 7 days), written by
 *   the gateway each time it holds a definition back: `bastion pin diff|approve` read it to show
 *   and approve the live upstream definition.
 * - `bastion:integrity:manifest-version:SERVER`  → string, highest manifest version accepted.
 * - channel `bastion:integrity:changed` → JSON `{server}`: published after any write above, so
 *   every replica drops its cached decisions for that server.
 */
export const INTEGRITY_KEYS = {
  prefix: 'bastion:integrity:',
  pin: (server: string, kind: DefinitionKind, name: string): string => `bastion:integrity:pin:${server}:${kind}:${name}`,
  pinPrefix: (server: string): string => `bastion:integrity:pin:${server}:`,
  pending: (server: string, kind: DefinitionKind, name: string): string => `bastion:integrity:pending:${server}:${kind}:${name}`,
  pendingPrefix: (server: string): string => `bastion:integrity:pending:${server}:`,
  manifestVersion: (server: string): string => `bastion:integrity:manifest-version:${server}`,
  channel: 'bastion:integrity:changed',
  pendingTtlMs: 7 * 24 * 3600 * 1000,
} as const;

/** A tool known on another server (for cross-server shadowing and name checks). */
export interface KnownTool {
  server: string;
  name: string;
  description?: string | undefined;
}
