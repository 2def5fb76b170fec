/**
 * Where pins live at runtime: the lockfile (through a LockSource that re-reads it when it
 * changes on disk, so `bastion pin approve` takes effect without a restart) and the StateStore
 * (runtime approvals and revocations, pending definitions, manifest versions; shared between
 * replicas when the store is). Key contract: INTEGRITY_KEYS in types.ts.
 *
 * The effective pin of a definition is the NEWEST decision among the lockfile pin and the store
 * entry (a Pin or a RevokedMarker), compared by approvedAt / revokedAt.
 */
import { statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { emptyLockfile, readLockfile, readLockfileSync, withPins, writeLockfile } from './lockfile.js';
import { INTEGRITY_KEYS, pinKey, type DefinitionKind, type Lockfile, type PendingDefinition, type Pin, type RevokedMarker } from './types.js';
import type { StateStore } from '../stores/types.js';
import { compareVersions } from './manifest.js';

export interface LockSource {
  /** The lockfile as last read. */
  current(): Lockfile;
  /** Re-read when the file changed on disk (cheap when it did not; rate-limited). */
  refresh(): Promise<void>;
  /** Add pins and write the file (read-modify-write, serialized). Absent: the source is read-only. */
  addPins?(server: string, pins: readonly Pin[]): Promise<void>;
}

/** A lockfile held in memory (tests, or a gateway run without a config file). */
export function memoryLockSource(initial: Lockfile = emptyLockfile()): LockSource & { set(l: Lockfile): void } {
  let lock = initial;
  return {
    current: () => lock,
    refresh: async () => undefined,
    set: (l) => {
      lock = l;
    },
    addPins: async (server, pins) => {
      lock = withPins(lock, server, pins);
    },
  };
}

export interface FileLockSourceOptions {
  /** Check the file's mtime at most this often (default 1000 ms). */
  minRefreshMs?: number;
  now?: () => number;
}

/** The lockfile on disk. Reads it once now (throws on an invalid file: fail closed at start-up). */
export function fileLockSource(path: string, options: FileLockSourceOptions = {}): LockSource {
  const now = options.now ?? Date.now;
  const every = options.minRefreshMs ?? 1000;
  // The fingerprint is taken synchronously, before the first read: an async first look could see
  // a later version of the file than the one read, and then never reload it.
  let seen: string;
  try {
    const st = statSync(path);
    seen = `${st.mtimeMs}:${st.size}:${st.ino}`;
  } catch {
    seen = 'absent';
  }
  let lock = readLockfileSync(path);
  let checkedAt = now();
  let chain: Promise<unknown> = Promise.resolve();
  const fingerprint = async (): Promise<string> => {
    try {
      const s = await stat(path);
      return `${s.mtimeMs}:${s.size}:${s.ino}`;
    } catch {
      return 'absent';
    }
  };
  const reload = async (): Promise<void> => {
    const f = await fingerprint();
    if (f === seen) return;
    // A lockfile being rewritten by hand may be briefly invalid: keep the last good one.
    try {
      lock = f === 'absent' ? emptyLockfile() : await readLockfile(path);
      seen = f;
    } catch {
      /* keep the previous version; the next refresh tries again */
    }
  };
  return {
    current: () => lock,
    refresh: async () => {
      if (now() - checkedAt < every) return;
      checkedAt = now();
      await reload();
    },
    addPins: (server, pins) => {
      const run = chain.then(async () => {
        const fresh = await readLockfile(path);
        const next = withPins(fresh, server, pins);
        await writeLockfile(path, next);
        lock = next;
        seen = await fingerprint();
      });
      chain = run.catch(() => undefined);
      return run;
    },
  };
}

function parseEntry(text: string | undefined): Pin | RevokedMarker | undefined {
  if (text === undefined) return undefined;
  try {
    const v = JSON.parse(text) as Record<string, unknown>;
    if (v.revoked === true && typeof v.revokedAt === 'string') return v as unknown as RevokedMarker;
    if (typeof v.hash === 'string' && typeof v.approvedAt === 'string' && v.definition !== null && typeof v.definition === 'object') return v as unknown as Pin;
  } catch {
    /* a corrupt entry is treated as absent: it approves nothing */
  }
  return undefined;
}

export class PinRegistry {
  constructor(
    readonly store: StateStore,
    readonly lock: LockSource,
  ) {}

  /** Store entries (pins and revocations) of one server, keyed by `kind:name`. */
  async runtimeEntries(server: string): Promise<Map<string, Pin | RevokedMarker>> {
    const prefix = INTEGRITY_KEYS.pinPrefix(server);
    const keys = await this.store.keys(prefix);
    const out = new Map<string, Pin | RevokedMarker>();
    await Promise.all(
      keys.map(async (k) => {
        const e = parseEntry(await this.store.get(k));
        if (e) out.set(k.slice(prefix.length), e);
      }),
    );
    return out;
  }

  /** Effective pins of a server: newest of lockfile pin and store entry per key. */
  async pinsFor(server: string): Promise<Map<string, Pin>> {
    const lockPins = this.lock.current().servers[server]?.pins ?? {};
    const runtime = await this.runtimeEntries(server);
    const out = new Map<string, Pin>();
    for (const [k, p] of Object.entries(lockPins)) out.set(k, p);
    for (const [k, e] of runtime) {
      const l = out.get(k);
      if ('revoked' in e) {
        if (l === undefined || e.revokedAt >= l.approvedAt) out.delete(k);
      } else if (l === undefined || e.approvedAt >= l.approvedAt) {
        out.set(k, e);
      }
    }
    return out;
  }

  async approve(server: string, pin: Pin): Promise<void> {
    await this.store.set(INTEGRITY_KEYS.pin(server, pin.kind, pin.name), JSON.stringify(pin));
    await this.store.delete(INTEGRITY_KEYS.pending(server, pin.kind, pin.name));
    await this.changed(server);
  }

  async revoke(server: string, kind: DefinitionKind, name: string, by: string, at: Date = new Date()): Promise<void> {
    const marker: RevokedMarker = { revoked: true, kind, name, revokedAt: at.toISOString(), revokedBy: by };
    await this.store.set(INTEGRITY_KEYS.pin(server, kind, name), JSON.stringify(marker));
    await this.changed(server);
  }

  async recordPending(p: PendingDefinition): Promise<void> {
    await this.store.set(INTEGRITY_KEYS.pending(p.server, p.kind, p.name), JSON.stringify(p), INTEGRITY_KEYS.pendingTtlMs);
  }

  async pending(server: string): Promise<PendingDefinition[]> {
    const keys = await this.store.keys(INTEGRITY_KEYS.pendingPrefix(server));
    const out: PendingDefinition[] = [];
    for (const k of keys) {
      const t = await this.store.get(k);
      if (t === undefined) continue;
      try {
        out.push(JSON.parse(t) as PendingDefinition);
      } catch {
        /* skip a corrupt entry */
      }
    }
    return out.sort((a, b) => pinKey(a.kind, a.name).localeCompare(pinKey(b.kind, b.name)));
  }

  /** Highest manifest version accepted for a server (lockfile or store). */
  async manifestVersion(server: string): Promise<string | undefined> {
    const a = this.lock.current().servers[server]?.manifestVersion;
    const b = await this.store.get(INTEGRITY_KEYS.manifestVersion(server));
    if (a === undefined) return b;
    if (b === undefined) return a;
    return compareVersions(a, b) >= 0 ? a : b;
  }

  async recordManifestVersion(server: string, version: string): Promise<void> {
    const cur = await this.manifestVersion(server);
    if (cur === undefined || compareVersions(version, cur) > 0) await this.store.set(INTEGRITY_KEYS.manifestVersion(server), version);
  }

  private async changed(server: string): Promise<void> {
    await this.store.publish(INTEGRITY_KEYS.channel, JSON.stringify({ server }));
  }
}
