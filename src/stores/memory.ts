/**
 * In-process state store. Fast and exact for one process; not shared between replicas, which is
 * why `shared` is false and the gateway warns when it is used where several replicas may run.
 * Time is injectable for tests.
 */
import { EventEmitter } from 'node:events';
import type { StateStore, TokenBucketLimit, TokenBucketResult } from './types.js';

interface Entry {
  value: string;
  expiresAt: number; // Infinity when none
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

export interface MemoryStateStoreOptions {
  now?: () => number;
  /** Expired entries are swept every this many ms (default 30s). */
  sweepIntervalMs?: number;
}

export class MemoryStateStore implements StateStore {
  readonly kind = 'memory';
  readonly shared = false;
  private readonly entries = new Map<string, Entry>();
  private readonly buckets = new Map<string, Bucket>();
  private readonly bus = new EventEmitter();
  private readonly now: () => number;
  private readonly sweeper: NodeJS.Timeout;

  constructor(options: MemoryStateStoreOptions = {}) {
    this.now = options.now ?? Date.now;
    this.bus.setMaxListeners(0);
    this.sweeper = setInterval(() => this.sweep(), options.sweepIntervalMs ?? 30_000);
    this.sweeper.unref();
  }

  private live(key: string): Entry | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (e.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }

  private sweep(): void {
    const t = this.now();
    for (const [k, e] of this.entries) if (e.expiresAt <= t) this.entries.delete(k);
    // A bucket untouched long enough to be full again carries no information.
    for (const [k, b] of this.buckets) if (t - b.updatedAt > 3_600_000) this.buckets.delete(k);
  }

  async putIfAbsent(key: string, ttlMs: number): Promise<boolean> {
    if (this.live(key)) return false;
    this.entries.set(key, { value: '1', expiresAt: this.now() + ttlMs });
    return true;
  }

  async takeToken(key: string, limit: TokenBucketLimit, cost = 1): Promise<TokenBucketResult> {
    const t = this.now();
    const perMs = limit.ratePerSecond / 1000;
    let b = this.buckets.get(key);
    if (b === undefined) {
      b = { tokens: limit.burst, updatedAt: t };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(limit.burst, b.tokens + (t - b.updatedAt) * perMs);
      b.updatedAt = t;
    }
    if (b.tokens >= cost) {
      b.tokens -= cost;
      return { allowed: true, remaining: Math.floor(b.tokens), retryAfterMs: 0 };
    }
    const retryAfterMs = perMs > 0 ? Math.ceil((cost - b.tokens) / perMs) : Number.POSITIVE_INFINITY;
    return { allowed: false, remaining: 0, retryAfterMs };
  }

  async increment(key: string, by: number, ttlMs: number): Promise<number> {
    const e = this.live(key);
    const next = (e ? Number(e.value) : 0) + by;
    this.entries.set(key, { value: String(next), expiresAt: e ? e.expiresAt : this.now() + ttlMs });
    return next;
  }

  async getOrCreate(key: string, value: string): Promise<string> {
    // No await between the read and the write: atomic in one process.
    const e = this.live(key);
    if (e) return e.value;
    this.entries.set(key, { value, expiresAt: Number.POSITIVE_INFINITY });
    return value;
  }

  async get(key: string): Promise<string | undefined> {
    return this.live(key)?.value;
  }

  async set(key: string, value: string, ttlMs?: number): Promise<void> {
    this.entries.set(key, { value, expiresAt: ttlMs === undefined ? Number.POSITIVE_INFINITY : this.now() + ttlMs });
  }

  async delete(key: string): Promise<void> {
    this.entries.delete(key);
    this.buckets.delete(key);
  }

  async keys(prefix: string): Promise<string[]> {
    const out: string[] = [];
    for (const k of this.entries.keys()) if (k.startsWith(prefix) && this.live(k)) out.push(k);
    return out;
  }

  async publish(channel: string, message: string): Promise<void> {
    // Delivered asynchronously, as a remote bus would.
    queueMicrotask(() => this.bus.emit(channel, message));
  }

  async subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>> {
    this.bus.on(channel, handler);
    return async () => {
      this.bus.off(channel, handler);
    };
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.bus.removeAllListeners();
  }
}
