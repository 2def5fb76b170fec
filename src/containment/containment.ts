/**
 * Incident containment state: the revocation deny-list (by token id, token hash, subject,
 * client, certificate thumbprint) and the quarantine list (a server, or one tool of it), kept in
 * the state store and mirrored in a local cache so the hot path makes no store round trip.
 *
 * Freshness (every replica within 1 s):
 * - every change bumps a version counter and is announced on `bastion:containment:changed`;
 *   a replica re-reads the lists at once when it hears it;
 * - a light poll (one GET of the version, every `pollMs`) catches a message missed while the
 *   subscriber connection was down.
 *
 * Fail closed: the cache is trusted only for `staleAfterMs` after its last successful check
 * against the store. Past that (store unreachable, or this replica partitioned from it) the
 * checks throw ERR_BASTION_STATE_UNAVAILABLE (503): a revocation made elsewhere might be missing.
 *
 * Ending sessions everywhere: `endSessions()` publishes a selector on
 * `bastion:containment:sessions`; every replica closes its matching local sessions and answers
 * with a count on the ack channel.
 */
import { createHash, randomUUID } from 'node:crypto';
import { BastionError } from '../errors.js';
import type { Principal } from '../identity/types.js';
import type { StateStore } from '../stores/types.js';

export type RevocationKind = 'jti' | 'token' | 'subject' | 'client' | 'cert';
export const REVOCATION_KINDS: readonly RevocationKind[] = ['jti', 'token', 'subject', 'client', 'cert'];

export interface RevocationEntry {
  kind: RevocationKind;
  /** The jti, the token's SHA-256 (base64url, never the token), subject, client id or x5t#S256. */
  value: string;
  at: string;
  by: string;
  reason?: string | undefined;
  /** Epoch ms after which the entry no longer applies (the token expired anyway). */
  expiresAt?: number | undefined;
}

export interface QuarantineEntry {
  server: string;
  /** Absent: the whole server. */
  tool?: string | undefined;
  at: string;
  by: string;
  reason?: string | undefined;
}

/** Which sessions to end. Every given field must match; at least one is required. */
export interface SessionSelector {
  id?: string | undefined;
  subject?: string | undefined;
  client?: string | undefined;
  issuer?: string | undefined;
}

export interface LocalSession {
  readonly id: string;
  readonly mount: string;
  readonly owner: string | undefined;
  readonly createdAt: number;
  readonly lastSeen: number;
  close(reason: string): Promise<void>;
  /**
   * Send the client a parameterless notification from the gateway (list_changed). The session
   * sends only the lists its initialize result declared, and holds them until the client's
   * notifications/initialized.
   */
  announce(method: string): void;
}

export interface LocalSessions {
  all(): Iterable<LocalSession>;
}

export interface SessionInfo {
  id: string;
  mount: string;
  issuer: string | undefined;
  subject: string | undefined;
  clientId: string | undefined;
  createdAt: string;
  lastSeen: string;
  replica: string;
}

export const CONTAINMENT_KEYS = {
  revoked: 'containment:revoked:',
  quarantine: 'containment:quarantine:',
  version: 'containment:version',
  sessions: 'containment:sessions:',
  channel: 'bastion:containment:changed',
  endChannel: 'bastion:containment:sessions',
  ackChannel: 'bastion:containment:sessions-ack',
} as const;

const TEN_YEARS_MS = 10 * 365 * 24 * 3600 * 1000;
const MAX_SNAPSHOT_SESSIONS = 5000;

function h(s: string): string {
  return createHash('sha256').update(s).digest('base64url').slice(0, 32);
}

export function revocationKey(kind: RevocationKind, value: string): string {
  return `${CONTAINMENT_KEYS.revoked}${kind}:${h(value)}`;
}

const LIST_CHANGED_TOOLS = ['notifications/tools/list_changed'];
const LIST_CHANGED_ALL = ['notifications/tools/list_changed', 'notifications/prompts/list_changed', 'notifications/resources/list_changed'];

export function quarantineKey(server: string, tool: string | undefined): string {
  return `${CONTAINMENT_KEYS.quarantine}${server}:${tool === undefined ? '*' : h(tool)}`;
}

/** Split a session owner (`issuer \0 subject \0 client`, see identity/types principalKey). */
export function splitOwner(owner: string | undefined): { issuer: string | undefined; subject: string | undefined; clientId: string | undefined } {
  if (owner === undefined) return { issuer: undefined, subject: undefined, clientId: undefined };
  const [issuer, subject, client] = owner.split('\u0000');
  return { issuer, subject, clientId: client ? client : undefined };
}

export function sessionMatches(s: LocalSession, sel: SessionSelector): boolean {
  if (sel.id === undefined && sel.subject === undefined && sel.client === undefined && sel.issuer === undefined) return false;
  if (sel.id !== undefined && s.id !== sel.id) return false;
  const o = splitOwner(s.owner);
  if (sel.subject !== undefined && o.subject !== sel.subject) return false;
  if (sel.client !== undefined && o.clientId !== sel.client) return false;
  if (sel.issuer !== undefined && o.issuer !== sel.issuer) return false;
  return true;
}

function stateUnavailable(what: string, cause?: unknown): BastionError {
  return new BastionError(
    'ERR_BASTION_STATE_UNAVAILABLE',
    `The gateway cannot confirm the current ${what} (the shared state store is unreachable); the request was refused (fail closed). Retry shortly.`,
    { reason: 'state_unavailable', headers: { 'Retry-After': '1' }, ...(cause === undefined ? {} : { cause }) },
  );
}

export interface ContainmentOptions {
  now?: () => number;
  /** Trust the cache this long after the last successful check (default 1500 ms). */
  staleAfterMs?: number;
  /** Version poll interval (default staleAfterMs / 3). */
  pollMs?: number;
  /** Id of this replica (sessions list, acks). Default random. */
  replicaId?: string;
  /** Sessions snapshot written for `GET /sessions` every this many ms (default 2000). */
  snapshotMs?: number;
  /** Called for each session ended here on an operator's request (audit). */
  onSessionEnded?: (s: LocalSession, sel: SessionSelector & { by: string }) => void;
  onError?: (message: string) => void;
}

export class Containment {
  readonly replicaId: string;
  private readonly now: () => number;
  private readonly staleAfterMs: number;
  private readonly pollMs: number;
  private readonly snapshotMs: number;
  private revoked = new Map<RevocationKind, Map<string, RevocationEntry>>();
  private quarantined = new Map<string, Map<string, QuarantineEntry>>();
  private revokedCount = 0;
  private version: string | undefined = undefined;
  private verifiedAt = Number.NEGATIVE_INFINITY;
  private syncing: Promise<void> | undefined;
  private again = false;
  private againForce = false;
  private poller: NodeJS.Timeout | undefined;
  private snapshotter: NodeJS.Timeout | undefined;
  private unsubs: Array<() => Promise<void>> = [];
  private sessions: LocalSessions | undefined;
  private readonly ackWaiters = new Map<string, (n: number, replica: string) => void>();
  private closed = false;
  /** The lists were loaded once: later loads announce quarantine changes to local sessions. */
  private loaded = false;

  constructor(
    readonly store: StateStore,
    private readonly options: ContainmentOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.staleAfterMs = options.staleAfterMs ?? 1500;
    this.pollMs = options.pollMs ?? Math.max(50, Math.floor(this.staleAfterMs / 3));
    this.snapshotMs = options.snapshotMs ?? 2000;
    this.replicaId = options.replicaId ?? randomUUID();
  }

  /** Subscribe, load the lists, start the poll. Never throws: an unreachable store leaves the cache untrusted. */
  async start(): Promise<void> {
    this.unsubs.push(await this.store.subscribe(CONTAINMENT_KEYS.channel, () => void this.sync(true)));
    this.unsubs.push(
      await this.store.subscribe(CONTAINMENT_KEYS.endChannel, (m) => {
        void this.onEndMessage(m);
      }),
    );
    this.unsubs.push(
      await this.store.subscribe(CONTAINMENT_KEYS.ackChannel, (m) => {
        try {
          const a = JSON.parse(m) as { request?: string; ended?: number; replica?: string };
          if (typeof a.request === 'string') this.ackWaiters.get(a.request)?.(Number(a.ended) || 0, String(a.replica));
        } catch {
          /* ignore a malformed ack */
        }
      }),
    );
    await this.sync(true);
    this.poller = setInterval(() => void this.sync(false), this.pollMs);
    this.poller.unref();
  }

  /** Local sessions of this replica (set once the gateway is listening). */
  attachSessions(sessions: LocalSessions): void {
    this.sessions = sessions;
    if (this.snapshotter) return;
    const write = (): void => {
      // Bounded: a listing for operators, not a registry (ending sessions does not depend on it).
      const list = this.localSessions().slice(0, MAX_SNAPSHOT_SESSIONS);
      void this.store.set(`${CONTAINMENT_KEYS.sessions}${this.replicaId}`, JSON.stringify(list), this.snapshotMs * 3).catch(() => undefined);
    };
    write();
    this.snapshotter = setInterval(write, this.snapshotMs);
    this.snapshotter.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.poller);
    clearInterval(this.snapshotter);
    for (const u of this.unsubs) await u().catch(() => undefined);
    this.unsubs = [];
    await this.store.delete(`${CONTAINMENT_KEYS.sessions}${this.replicaId}`).catch(() => undefined);
  }

  /** True while the local copy may be relied on. */
  trusted(): boolean {
    return this.now() - this.verifiedAt <= this.staleAfterMs;
  }

  /**
   * Bring the cache up to date: one GET of the version; the lists are re-read only when it
   * changed (or `force`). Concurrent calls share one run; a call during a run schedules another.
   */
  sync(force: boolean): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.syncing) {
      // A run in progress may have read the store before the change this caller wants seen.
      this.again = true;
      this.againForce ||= force;
      return this.syncing;
    }
    this.syncing = (async () => {
      try {
        let doForce = force;
        do {
          this.again = false;
          await this.syncOnce(doForce);
          doForce = this.againForce;
          this.againForce = false;
        } while (this.again && !this.closed);
      } finally {
        this.syncing = undefined;
      }
    })();
    return this.syncing;
  }

  private async syncOnce(force: boolean): Promise<void> {
    const started = this.now();
    try {
      const v = (await this.store.get(CONTAINMENT_KEYS.version)) ?? '0';
      if (force || v !== this.version) await this.load();
      this.version = v;
      this.verifiedAt = started;
    } catch (err) {
      this.options.onError?.(`containment: cannot refresh the deny-list and quarantine list: ${(err as Error).message}`);
    }
  }

  /** Every entry stored under a prefix (keys, then their values in parallel; unparsable ones skipped). */
  private async entries<T>(prefix: string): Promise<T[]> {
    const keys = await this.store.keys(prefix);
    const texts = await Promise.all(keys.map((k) => this.store.get(k)));
    const out: T[] = [];
    for (const text of texts) {
      const e = parseJson<T>(text);
      if (e) out.push(e);
    }
    return out;
  }

  private async load(): Promise<void> {
    const [rv, qv] = await Promise.all([this.entries<RevocationEntry>(CONTAINMENT_KEYS.revoked), this.entries<QuarantineEntry>(CONTAINMENT_KEYS.quarantine)]);
    const revoked = new Map<RevocationKind, Map<string, RevocationEntry>>();
    let count = 0;
    for (const e of rv) {
      if (!REVOCATION_KINDS.includes(e.kind) || typeof e.value !== 'string') continue;
      let m = revoked.get(e.kind);
      if (!m) revoked.set(e.kind, (m = new Map()));
      m.set(e.value, e);
      count++;
    }
    const quarantined = new Map<string, Map<string, QuarantineEntry>>();
    for (const e of qv) {
      if (typeof e.server !== 'string') continue;
      let m = quarantined.get(e.server);
      if (!m) quarantined.set(e.server, (m = new Map()));
      m.set(e.tool ?? '*', e);
    }
    this.revoked = revoked;
    this.revokedCount = count;
    const before = this.quarantined;
    this.quarantined = quarantined;
    if (this.loaded) this.announceQuarantine(before, quarantined);
    this.loaded = true;
  }

  /**
   * Tell the clients of a server whose quarantine entries changed that its lists changed: the
   * tool list for a tool entry, every list for a whole-server entry (each session drops the lists
   * its client was not told about). Every replica does this for its own sessions when it loads the new lists.
   */
  private announceQuarantine(before: Map<string, Map<string, QuarantineEntry>>, after: Map<string, Map<string, QuarantineEntry>>): void {
    if (this.sessions === undefined) return;
    const changed = new Map<string, boolean>();
    for (const server of new Set([...before.keys(), ...after.keys()])) {
      const a = before.get(server);
      const b = after.get(server);
      const keys = new Set([...(a?.keys() ?? []), ...(b?.keys() ?? [])]);
      let tools = false;
      let whole = false;
      for (const k of keys) {
        if (a?.has(k) === b?.has(k)) continue;
        if (k === '*') whole = true;
        else tools = true;
      }
      if (whole || tools) changed.set(server, whole);
    }
    if (changed.size === 0) return;
    for (const s of this.sessions.all()) {
      const whole = changed.get(s.mount);
      if (whole === undefined) continue;
      // One session that cannot take it must not keep the others from hearing.
      for (const method of whole ? LIST_CHANGED_ALL : LIST_CHANGED_TOOLS) {
        try {
          s.announce(method);
        } catch (err) {
          this.options.onError?.(`containment: cannot announce ${method} to session ${s.id}: ${(err as Error).message}`);
        }
      }
    }
  }

  // ---- hot path -------------------------------------------------------------------------

  /** Throws 503 (and starts a refresh) when the cache cannot be trusted. */
  private assertTrusted(what: string): void {
    if (this.trusted()) return;
    void this.sync(false);
    throw stateUnavailable(what);
  }

  /** The entry that revokes this principal, if any. Throws 503 when the cache cannot be trusted. */
  revocationOf(p: Principal): RevocationEntry | undefined {
    this.assertTrusted('revocation list');
    if (this.revokedCount === 0) return undefined;
    const t = this.now();
    const check = (kind: RevocationKind, v: string | undefined): RevocationEntry | undefined => {
      if (v === undefined) return undefined;
      const e = this.revoked.get(kind)?.get(v);
      return e && (e.expiresAt === undefined || e.expiresAt > t) ? e : undefined;
    };
    return (
      check('token', p.tokenHash) ??
      check('jti', p.tokenId) ??
      check('subject', p.authMethod === 'none' ? undefined : p.subject) ??
      check('client', p.clientId) ??
      check('cert', p.certificate?.thumbprint)
    );
  }

  /** Whether a server (every tool) or one of its tools is quarantined. Throws 503 when untrusted. */
  quarantineOf(server: string, tool: string | undefined): QuarantineEntry | undefined {
    this.assertTrusted('quarantine list');
    const m = this.quarantined.get(server);
    if (!m) return undefined;
    return m.get('*') ?? (tool === undefined ? undefined : m.get(tool));
  }

  /** Quarantine entries of a server (for list filtering). Throws 503 when untrusted. */
  quarantineFor(server: string): ReadonlyMap<string, QuarantineEntry> | undefined {
    this.assertTrusted('quarantine list');
    return this.quarantined.get(server);
  }

  // ---- operator actions (admin API) ------------------------------------------------------

  private async changed(): Promise<void> {
    await this.store.increment(CONTAINMENT_KEYS.version, 1, TEN_YEARS_MS);
    await this.store.publish(CONTAINMENT_KEYS.channel, JSON.stringify({ replica: this.replicaId }));
    await this.sync(true);
  }

  async revoke(kind: RevocationKind, value: string, o: { by: string; reason?: string | undefined; expiresAt?: number | undefined }): Promise<RevocationEntry> {
    const entry: RevocationEntry = { kind, value, at: new Date(this.now()).toISOString(), by: o.by, ...(o.reason ? { reason: o.reason } : {}), ...(o.expiresAt ? { expiresAt: o.expiresAt } : {}) };
    const ttl = o.expiresAt !== undefined ? Math.max(1000, o.expiresAt - this.now()) : undefined;
    await this.store.set(revocationKey(kind, value), JSON.stringify(entry), ttl);
    await this.changed();
    return entry;
  }

  /** Delete one entry and announce the change; true when it was there. */
  private async remove(key: string): Promise<boolean> {
    const had = (await this.store.get(key)) !== undefined;
    await this.store.delete(key);
    await this.changed();
    return had;
  }

  unrevoke(kind: RevocationKind, value: string): Promise<boolean> {
    return this.remove(revocationKey(kind, value));
  }

  async listRevocations(): Promise<RevocationEntry[]> {
    return (await this.entries<RevocationEntry>(CONTAINMENT_KEYS.revoked)).sort((a, b) => a.at.localeCompare(b.at));
  }

  async quarantine(server: string, tool: string | undefined, o: { by: string; reason?: string | undefined }): Promise<QuarantineEntry> {
    const entry: QuarantineEntry = { server, ...(tool !== undefined ? { tool } : {}), at: new Date(this.now()).toISOString(), by: o.by, ...(o.reason ? { reason: o.reason } : {}) };
    await this.store.set(quarantineKey(server, tool), JSON.stringify(entry));
    await this.changed();
    return entry;
  }

  release(server: string, tool: string | undefined): Promise<boolean> {
    return this.remove(quarantineKey(server, tool));
  }

  async listQuarantine(): Promise<QuarantineEntry[]> {
    return (await this.entries<QuarantineEntry>(CONTAINMENT_KEYS.quarantine)).sort((a, b) => `${a.server}:${a.tool ?? ''}`.localeCompare(`${b.server}:${b.tool ?? ''}`));
  }

  // ---- sessions -------------------------------------------------------------------------

  localSessions(): SessionInfo[] {
    if (!this.sessions) return [];
    const out: SessionInfo[] = [];
    for (const s of this.sessions.all()) {
      const o = splitOwner(s.owner);
      out.push({ id: s.id, mount: s.mount, ...o, createdAt: new Date(s.createdAt).toISOString(), lastSeen: new Date(s.lastSeen).toISOString(), replica: this.replicaId });
    }
    return out;
  }

  /** Sessions of every replica: this one live, the others from their last snapshot (at most a few seconds old). */
  async allSessions(): Promise<SessionInfo[]> {
    const out = this.localSessions();
    const keys = await this.store.keys(CONTAINMENT_KEYS.sessions);
    for (const k of keys) {
      if (k === `${CONTAINMENT_KEYS.sessions}${this.replicaId}`) continue;
      const list = parseJson<SessionInfo[]>(await this.store.get(k));
      if (Array.isArray(list)) out.push(...list);
    }
    return out;
  }

  /**
   * End matching sessions on every replica. Resolves after `waitMs` with the number ended as
   * reported by the replicas that answered in time (each ends its own sessions regardless).
   */
  async endSessions(sel: SessionSelector, by: string, waitMs = 300): Promise<{ ended: number; replicas: number }> {
    const request = randomUUID();
    let ended = 0;
    const replicas = new Set<string>();
    this.ackWaiters.set(request, (n, replica) => {
      ended += n;
      replicas.add(replica);
    });
    try {
      await this.store.publish(CONTAINMENT_KEYS.endChannel, JSON.stringify({ ...sel, by, request }));
      await new Promise((r) => setTimeout(r, waitMs));
    } finally {
      this.ackWaiters.delete(request);
    }
    return { ended, replicas: replicas.size };
  }

  private async onEndMessage(m: string): Promise<void> {
    const msg = parseJson<SessionSelector & { by?: string; request?: string }>(m);
    if (!msg) return;
    const sel: SessionSelector = {};
    for (const f of ['id', 'subject', 'client', 'issuer'] as const) if (typeof msg[f] === 'string') sel[f] = msg[f];
    const by = typeof msg.by === 'string' ? msg.by : 'operator';
    let n = 0;
    if (this.sessions) {
      const matching = [...this.sessions.all()].filter((s) => sessionMatches(s, sel));
      for (const s of matching) {
        this.options.onSessionEnded?.(s, { ...sel, by });
        await s.close(`ended by an operator (${by})`).catch(() => undefined);
        n++;
      }
    }
    if (typeof msg.request === 'string') {
      await this.store.publish(CONTAINMENT_KEYS.ackChannel, JSON.stringify({ request: msg.request, ended: n, replica: this.replicaId })).catch(() => undefined);
    }
  }
}

function parseJson<T>(text: string | undefined): T | undefined {
  if (text === undefined) return undefined;
  try {
    const v = JSON.parse(text) as unknown;
    return v !== null && typeof v === 'object' ? (v as T) : undefined;
  } catch {
    return undefined;
  }
}
