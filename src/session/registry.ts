/**
 * The downstream sessions of this process, and, with a shared state store, of every replica.
 *
 * Ids are 32 crypto-random bytes, base64url (visible ASCII, 256 bits): unguessable, and never an
 * authorization by themselves (a session belongs to the principal that created it).
 *
 * With a shared store each session is also recorded under `bastion:session:ID` (mount, owner,
 * the client's initialize parameters, the negotiated version): any replica can then serve it by
 * replaying the handshake to its own upstream connection, and answers 404 for ids no replica
 * knows. Ending a session is broadcast so every replica drops its copy.
 */
import { randomBytes } from 'node:crypto';
import type { StateStore } from '../stores/types.js';
import type { Session } from './session.js';

export const SESSION_KEY_PREFIX = 'bastion:session:';
export const SESSION_ENDED_CHANNEL = 'bastion:session:ended';

export interface SharedSessionRecord {
  mount: string;
  owner: string | undefined;
  initParams: Record<string, unknown>;
  protocolVersion: string;
  createdAt: number;
}

export class SessionRegistry {
  private readonly sessions = new Map<string, Session>();
  private readonly touched = new Map<string, number>();
  private unsubscribe: (() => Promise<void>) | undefined;

  constructor(
    readonly max: number,
    private readonly shared?: { store: StateStore; ttlMs: number },
  ) {}

  static newId(): string {
    return randomBytes(32).toString('base64url');
  }

  get isShared(): boolean {
    return this.shared !== undefined;
  }

  /** Listen for sessions ended on other replicas. */
  async start(onRemoteEnd: (id: string) => void): Promise<void> {
    if (!this.shared) return;
    this.unsubscribe = await this.shared.store.subscribe(SESSION_ENDED_CHANNEL, onRemoteEnd);
  }

  async stop(): Promise<void> {
    await this.unsubscribe?.();
  }

  get size(): number {
    return this.sessions.size;
  }

  get(id: string): Session | undefined {
    return this.sessions.get(id);
  }

  /** A session another replica created, when the shared store knows it. */
  async lookupShared(id: string): Promise<SharedSessionRecord | undefined> {
    if (!this.shared) return undefined;
    const raw = await this.shared.store.get(SESSION_KEY_PREFIX + id);
    if (raw === undefined) return undefined;
    try {
      return JSON.parse(raw) as SharedSessionRecord;
    } catch {
      return undefined;
    }
  }

  add(s: Session): void {
    this.sessions.set(s.id, s);
    void this.record(s);
  }

  /** Adopt a session restored from the shared store (already recorded there). */
  adopt(s: Session): void {
    this.sessions.set(s.id, s);
    this.touched.set(s.id, Date.now());
  }

  private async record(s: Session): Promise<void> {
    if (!this.shared) return;
    const snap = s.snapshot();
    if (!snap) return;
    this.touched.set(s.id, Date.now());
    await this.shared.store.set(SESSION_KEY_PREFIX + s.id, JSON.stringify(snap), this.shared.ttlMs).catch(() => {});
  }

  /** Keep the shared record alive while the session is used (at most once a minute). */
  touch(s: Session): void {
    if (!this.shared) return;
    const last = this.touched.get(s.id) ?? 0;
    if (Date.now() - last < 60_000) return;
    void this.record(s);
  }

  /** Local removal; with `everywhere`, the shared record goes too and replicas are told. */
  remove(s: Session, everywhere = true): void {
    if (this.sessions.get(s.id) === s) this.sessions.delete(s.id);
    this.touched.delete(s.id);
    if (this.shared && everywhere) {
      const { store } = this.shared;
      void store.delete(SESSION_KEY_PREFIX + s.id).catch(() => {});
      void store.publish(SESSION_ENDED_CHANNEL, s.id).catch(() => {});
    }
  }

  all(): IterableIterator<Session> {
    return this.sessions.values();
  }

  inFlight(): number {
    let n = 0;
    for (const s of this.sessions.values()) n += s.inFlight;
    return n;
  }
}
