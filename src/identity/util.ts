/** Small helpers shared by the identity room. */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { SecretRef } from '../config/auth.js';

/** SHA-256 of a string, base64url (no padding): the handle used for tokens, never the token. */
export function sha256b64url(s: string): string {
  return createHash('sha256').update(s).digest('base64url');
}

/** Constant-time equality of two strings (compared as SHA-256 digests, so lengths may differ). */
export function safeEqual(a: string, b: string): boolean {
  const da = createHash('sha256').update(a).digest();
  const db = createHash('sha256').update(b).digest();
  return timingSafeEqual(da, db);
}

/**
 * The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1; the scheme name is
 * case-insensitive), or undefined when the header is absent or of another shape. For the
 * gateway's own static tokens (admin API, metrics scrape); MCP requests go through the identity stage.
 */
export function bearerCredential(header: string | undefined): string | undefined {
  const m = /^Bearer +(\S+)\s*$/i.exec(header ?? '');
  return m === null ? undefined : m[1];
}

/** Why a credential was refused. `reason` is machine-readable, `description` public and fixed. */
export class CredentialRejected extends Error {
  constructor(
    readonly reason: string,
    readonly description: string,
    /** True when the refusal is ours (a dependency is down), not the client's: answer 503. */
    readonly unavailable = false,
  ) {
    super(description);
    this.name = 'CredentialRejected';
  }
}

export function isCredentialRejected(e: unknown): e is CredentialRejected {
  return e instanceof CredentialRejected;
}

/** Resolve an env/file secret reference. Throws a message naming the reference, never the value. */
export function resolveSecret(ref: SecretRef, baseDir: string, env: NodeJS.ProcessEnv = process.env): string {
  if ('env' in ref) {
    const v = env[ref.env];
    if (v === undefined || v === '') throw new Error(`environment variable ${ref.env} is not set (it should hold the secret)`);
    return v;
  }
  const path = resolve(baseDir, ref.file);
  let v: string;
  try {
    v = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read secret file ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  v = v.replace(/\r?\n$/, '');
  if (v === '') throw new Error(`secret file ${path} is empty`);
  return v;
}

/**
 * A secret the gateway checks requests against (the admin token, the metrics scrape token) that an
 * operator can rotate without a restart: `{env}` is read once; `{file}` is read at start (a
 * problem stops start-up, as resolveSecret) and read again when the file changes (size, mtime or
 * inode; looked at no more than once per `checkEveryMs`). Write the new token to a new file and
 * rename it over the old one, so no reader sees half a token. A file that disappears or cannot be
 * read gives no secret at all, so every request is refused (fail closed) until it is readable again.
 */
export class RotatingSecret {
  private value: string | undefined;
  private stamp = '';
  private checkedAt: number;
  private readonly path: string | undefined;
  private readonly checkEveryMs: number;
  private readonly now: () => number;

  constructor(
    private readonly ref: SecretRef,
    private readonly baseDir: string,
    env: NodeJS.ProcessEnv = process.env,
    private readonly opts: { checkEveryMs?: number; now?: () => number; onChange?: (event: 'rotated' | 'unreadable', detail: string) => void } = {},
  ) {
    this.value = resolveSecret(ref, baseDir, env);
    this.path = 'file' in ref ? resolve(baseDir, ref.file) : undefined;
    this.checkEveryMs = opts.checkEveryMs ?? 1000;
    this.now = opts.now ?? Date.now;
    this.checkedAt = this.now();
    if (this.path !== undefined) this.stamp = this.fileStamp() ?? '';
  }

  private fileStamp(): string | undefined {
    try {
      const st = statSync(this.path!);
      return `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      return undefined;
    }
  }

  /** The secret now, or undefined when its file cannot be read (refuse everything). */
  current(): string | undefined {
    if (this.path === undefined) return this.value;
    const t = this.now();
    if (t - this.checkedAt < this.checkEveryMs) return this.value;
    this.checkedAt = t;
    const stamp = this.fileStamp();
    if (stamp !== undefined && stamp === this.stamp && this.value !== undefined) return this.value;
    this.stamp = stamp ?? '';
    try {
      if (stamp === undefined) throw new Error(`cannot read secret file ${this.path}`);
      const v = resolveSecret(this.ref, this.baseDir);
      if (v !== this.value) this.opts.onChange?.('rotated', this.path);
      this.value = v;
    } catch (err) {
      if (this.value !== undefined) this.opts.onChange?.('unreadable', (err as Error).message);
      this.value = undefined;
    }
    return this.value;
  }
}

/** Read a dotted claim path (`realm_access.roles`) as a list of strings. */
export function claimStrings(claims: Record<string, unknown>, path: string): string[] {
  let v: unknown = claims;
  for (const part of path.split('.')) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return [];
    if (!Object.prototype.hasOwnProperty.call(v, part)) return [];
    v = (v as Record<string, unknown>)[part];
  }
  if (typeof v === 'string') return v.split(/[ ,]+/).filter((x) => x !== '');
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  return [];
}

/** OAuth scopes from `scope` (space-delimited, RFC 9068/8693) or `scp` (string or array). */
export function scopesOf(claims: Record<string, unknown>): string[] {
  const s = claims['scope'] ?? claims['scp'];
  if (typeof s === 'string') return s.split(' ').filter((x) => x !== '');
  if (Array.isArray(s)) return s.filter((x): x is string => typeof x === 'string');
  return [];
}
