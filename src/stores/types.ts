/**
 * State shared between requests (and, with a shared backing, between replicas): replay caches,
 * rate-limit counters, pins, deny-lists, baselines. Every method is atomic per key.
 *
 * Implementations: MemoryStateStore (one process) and RedisStateStore (several replicas).
 * A store that cannot be reached throws a BastionError `ERR_BASTION_STATE_UNAVAILABLE`;
 * security-critical callers let it propagate (fail closed).
 */
export interface TokenBucketLimit {
  /** Tokens added per second. */
  ratePerSecond: number;
  /** Bucket size: the largest burst. */
  burst: number;
}

export interface TokenBucketResult {
  allowed: boolean;
  /** Tokens left after this take. */
  remaining: number;
  /** When not allowed: milliseconds until one token is available. */
  retryAfterMs: number;
}

export interface StateStore {
  /** `memory` or `redis`. */
  readonly kind: string;
  /** True when every replica sees the same state (Redis); false for the in-process store. */
  readonly shared: boolean;

  /** Set `key` only if absent, with a TTL. True when this call set it (first sight): replay caches. */
  putIfAbsent(key: string, ttlMs: number): Promise<boolean>;
  /** Take `cost` tokens from the bucket at `key`, atomically. */
  takeToken(key: string, limit: TokenBucketLimit, cost?: number): Promise<TokenBucketResult>;
  /** Add `by` to a counter (created at 0 with the TTL when absent); returns the new value. */
  increment(key: string, by: number, ttlMs: number): Promise<number>;

  /**
   * Atomic set-if-absent that returns the winner: when `key` is absent it is set to `value` (no
   * expiry) and `value` is returned; when present its stored value is returned and left alone.
   * Every concurrent caller, on every replica sharing the store, gets the same value: for
   * state the replicas must agree on once (the shared DPoP nonce key).
   */
  getOrCreate(key: string, value: string): Promise<string>;

  get(key: string): Promise<string | undefined>;
  /** `ttlMs` undefined: no expiry. */
  set(key: string, value: string, ttlMs?: number): Promise<void>;
  delete(key: string): Promise<void>;
  /** Keys with this prefix (small sets only: pins, deny-lists, quarantine). */
  keys(prefix: string): Promise<string[]>;

  /** Broadcast to every replica (including this one). */
  publish(channel: string, message: string): Promise<void>;
  /** Returns an unsubscribe function. */
  subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>>;

  close(): Promise<void>;
}
