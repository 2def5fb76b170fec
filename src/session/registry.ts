/**
 * The downstream sessions of this process. Ids are 32 crypto-random bytes, base64url (visible
 * ASCII, 256 bits): unguessable, and never an authorization by themselves (a session belongs to
 * the principal that created it).
 */
import { randomBytes } from 'node:crypto';
import type { Session } from './session.js';

export class SessionRegistry {
  private readonly sessions = new Map<string, Session>();

  constructor(readonly max: number) {}

  static newId(): string {
    return randomBytes(32).toString('base64url');
  }

  get size(): number {
    return this.sessions.size;
  }

  get(id: string): Session | undefined {
    return this.sessions.get(id);
  }

  add(s: Session): void {
    this.sessions.set(s.id, s);
  }

  remove(s: Session): void {
    if (this.sessions.get(s.id) === s) this.sessions.delete(s.id);
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
