/**
 * A bounded LRU of verified credentials keyed by SHA-256 of the token (never the token).
 * Entries expire with the token (or earlier, when the caller says so). Time is injected.
 */
export class TokenCache<V> {
  private readonly map = new Map<string, { value: V; expiresAtMs: number }>();

  constructor(
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.map.size;
  }

  get(key: string): V | undefined {
    const e = this.map.get(key);
    if (e === undefined) return undefined;
    if (e.expiresAtMs <= this.now()) {
      this.map.delete(key);
      return undefined;
    }
    // Refresh recency.
    this.map.delete(key);
    this.map.set(key, e);
    return e.value;
  }

  set(key: string, value: V, expiresAtMs: number): void {
    if (this.maxEntries <= 0 || expiresAtMs <= this.now()) return;
    this.map.delete(key);
    this.map.set(key, { value, expiresAtMs });
    while (this.map.size > this.maxEntries) {
      const oldest = this.map.keys().next().value as string;
      this.map.delete(oldest);
    }
  }

  delete(key: string): void {
    this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
  }
}
