/**
 * Redis-backed state store: shared by every replica (`shared = true`).
 *
 * - Every key lives under `keyPrefix`: plain entries under `${keyPrefix}k:`, token buckets under
 *   `${keyPrefix}tb:`, pub/sub channels under `${keyPrefix}ch:`, so `keys()` never sees a bucket
 *   and `delete()` clears both, as the memory store does.
 * - Atomic: putIfAbsent is `SET NX PX`; takeToken, increment and getOrCreate are Lua scripts (one
 *   round trip, no interleaving). Buckets use the Redis server clock (`TIME`), so replicas whose clocks drift
 *   still share one bucket correctly.
 * - Fails fast: the command connection has no offline queue and a command timeout, so with Redis
 *   unreachable every method throws `ERR_BASTION_STATE_UNAVAILABLE` at once instead of hanging;
 *   ioredis reconnects by itself and the store works again when Redis returns.
 * - Pub/sub uses a dedicated subscriber connection (a subscribed connection can run nothing
 *   else). Handlers are registered locally and the subscription is re-established by ioredis
 *   after every reconnect, so `subscribe()` never fails: callers that must not miss a message
 *   re-read state after a gap (see containment/containment.ts).
 *
 * URLs: `redis://`, `rediss://` (TLS), `redis+sentinel://[:pw@]h1:26379,h2:26379/MASTER[/db]`,
 * `redis+cluster://h1:6379,h2:6379` (`rediss+…` for TLS).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { Redis, Cluster, type RedisOptions } from 'ioredis';
import { BastionError } from '../errors.js';
import type { StateStore, TokenBucketLimit, TokenBucketResult } from './types.js';

export interface RedisStateStoreOptions {
  url: string;
  /** Default `bastion:`. */
  keyPrefix?: string;
  /** Overrides a password in the URL. */
  password?: string;
  /** `true` or CA / client certificate files (relative to baseDir). */
  tls?: boolean | { ca?: string | undefined; cert?: string | undefined; key?: string | undefined; servername?: string | undefined };
  baseDir?: string;
  /** Default 1000 ms. */
  commandTimeoutMs?: number;
  /** Called on connection state changes (for logs). */
  onStatus?: (status: 'ready' | 'error' | 'reconnecting' | 'end', detail?: string) => void;
}

type Client = Redis | Cluster;

interface Scripts {
  bastionTakeToken(bucket: string, rate: number, burst: number, cost: number): Promise<[number, string, number]>;
  bastionIncrement(key: string, by: number, ttlMs: number): Promise<string>;
  bastionGetOrCreate(key: string, value: string): Promise<string>;
}

/**
 * Token bucket. KEYS[1] bucket hash {t: tokens, u: updated ms}; ARGV rate/s, burst, cost.
 * Returns {allowed 0|1, tokens left (string, fractional), retryAfterMs (-1: never)}.
 */
const TAKE_TOKEN = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 't', 'u')
local tokens = tonumber(b[1])
local updated = tonumber(b[2])
if tokens == nil or updated == nil then
  tokens = burst
else
  local elapsed = now - updated
  if elapsed < 0 then elapsed = 0 end
  tokens = math.min(burst, tokens + elapsed * rate / 1000)
end
local allowed = 0
local retry = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
elseif rate > 0 then
  retry = math.ceil((cost - tokens) * 1000 / rate)
else
  retry = -1
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'u', tostring(now))
local fill = 3600000
if rate > 0 then fill = math.ceil(burst * 1000 / rate) + 1000 end
redis.call('PEXPIRE', KEYS[1], fill)
return {allowed, tostring(tokens), retry}
`;

/** Counter created at 0 with the TTL when absent. KEYS[1]; ARGV by, ttlMs. Returns the new value as a string. */
const INCREMENT = `
local existed = redis.call('EXISTS', KEYS[1])
local v = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
if existed == 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v
`;

/** Set-if-absent returning the winner, no expiry. KEYS[1]; ARGV value. Returns the stored value. */
const GET_OR_CREATE = `
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
`;

function unavailable(err: unknown): BastionError {
  if (err instanceof BastionError) return err;
  return new BastionError('ERR_BASTION_STATE_UNAVAILABLE', 'The shared state store (Redis) is unreachable; the request was refused (fail closed). Retry shortly.', {
    cause: err,
    reason: 'state_unavailable',
    headers: { 'Retry-After': '1' },
  });
}

interface ParsedUrl {
  mode: 'single' | 'sentinel' | 'cluster';
  tls: boolean;
  hosts: Array<{ host: string; port: number }>;
  username: string | undefined;
  password: string | undefined;
  /** Sentinel master name. */
  name: string | undefined;
  db: number | undefined;
}

/** Parse a sentinel/cluster URL (several hosts, which WHATWG URL does not accept). */
export function parseRedisUrl(url: string): ParsedUrl {
  const m = /^(rediss?)(?:\+(sentinel|cluster))?:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?#]+)(\/[^?#]*)?(?:\?.*)?$/.exec(url);
  if (!m) throw new BastionError('ERR_BASTION_CONFIG_INVALID', 'state.url is not a Redis URL (redis://host:port, rediss://…, redis+sentinel://h1:26379,h2:26379/master, redis+cluster://h1:6379,h2:6379)');
  const mode = (m[2] as 'sentinel' | 'cluster' | undefined) ?? 'single';
  const defaultPort = mode === 'sentinel' ? 26379 : 6379;
  const hosts = m[5]!.split(',').map((hp) => {
    const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(hp);
    if (v6) return { host: v6[1]!, port: v6[2] ? Number(v6[2]) : defaultPort };
    const [host, port] = hp.split(':');
    return { host: host!, port: port ? Number(port) : defaultPort };
  });
  const parts = (m[6] ?? '').split('/').filter(Boolean);
  let name: string | undefined;
  let db: number | undefined;
  if (mode === 'sentinel') {
    name = parts[0] ? decodeURIComponent(parts[0]) : undefined;
    if (parts[1]) db = Number(parts[1]);
  } else if (parts[0]) db = Number(parts[0]);
  return {
    mode,
    tls: m[1] === 'rediss',
    hosts,
    username: m[3] ? decodeURIComponent(m[3]) : undefined,
    password: m[4] !== undefined ? decodeURIComponent(m[4]) : undefined,
    name,
    db,
  };
}

/** Escape glob characters for SCAN MATCH. */
function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

export class RedisStateStore implements StateStore {
  readonly kind = 'redis';
  readonly shared = true;
  private readonly client: Client;
  private subscriber: Client | undefined;
  private readonly handlers = new Map<string, Set<(message: string) => void>>();
  private readonly prefix: string;
  private readonly common: RedisOptions;
  private readonly parsed: ParsedUrl;
  private closed = false;

  constructor(private readonly options: RedisStateStoreOptions) {
    this.prefix = options.keyPrefix ?? 'bastion:';
    this.parsed = parseRedisUrl(options.url);
    const tls = this.tlsOptions();
    this.common = {
      ...(this.parsed.username ? { username: this.parsed.username } : {}),
      ...(options.password ?? this.parsed.password ? { password: options.password ?? this.parsed.password } : {}),
      ...(this.parsed.db !== undefined ? { db: this.parsed.db } : {}),
      ...(tls ? { tls } : {}),
      commandTimeout: options.commandTimeoutMs ?? 1000,
      connectTimeout: Math.max(1000, (options.commandTimeoutMs ?? 1000) * 2),
      maxRetriesPerRequest: 0,
      retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
      lazyConnect: false,
    };
    this.client = this.connect({ enableOfflineQueue: false }, 'commands');
    const scripts = this.client as unknown as { defineCommand(name: string, def: { numberOfKeys: number; lua: string }): void };
    scripts.defineCommand('bastionTakeToken', { numberOfKeys: 1, lua: TAKE_TOKEN });
    scripts.defineCommand('bastionIncrement', { numberOfKeys: 1, lua: INCREMENT });
    scripts.defineCommand('bastionGetOrCreate', { numberOfKeys: 1, lua: GET_OR_CREATE });
  }

  private tlsOptions(): ConnectionOptions | undefined {
    const t = this.options.tls;
    if (!t && !this.parsed.tls) return undefined;
    const base = this.options.baseDir ?? process.cwd();
    const read = (f: string | undefined): Buffer | undefined => (f ? readFileSync(resolve(base, f)) : undefined);
    const o: ConnectionOptions = { rejectUnauthorized: true };
    if (typeof t === 'object') {
      const ca = read(t.ca);
      const cert = read(t.cert);
      const key = read(t.key);
      if (ca) o.ca = ca;
      if (cert) o.cert = cert;
      if (key) o.key = key;
      if (t.servername) o.servername = t.servername;
    }
    return o;
  }

  private connect(extra: RedisOptions, role: string): Client {
    const p = this.parsed;
    let c: Client;
    if (p.mode === 'cluster') {
      c = new Cluster(p.hosts, {
        redisOptions: { ...this.common, ...extra },
        enableOfflineQueue: extra.enableOfflineQueue ?? true,
        clusterRetryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
      });
    } else if (p.mode === 'sentinel') {
      if (!p.name) throw new BastionError('ERR_BASTION_CONFIG_INVALID', 'state.url: a Sentinel URL names the master after the hosts: redis+sentinel://h1:26379,h2:26379/mymaster');
      // The password is the data nodes' (Sentinels themselves are reached without AUTH).
      c = new Redis({ ...this.common, ...extra, sentinels: p.hosts, name: p.name });
    } else {
      c = new Redis({ ...this.common, ...extra, host: p.hosts[0]!.host, port: p.hosts[0]!.port });
    }
    const status = this.options.onStatus;
    // An 'error' listener is required: without it ioredis reports every reconnect failure loudly.
    c.on('error', (err: Error) => status?.('error', `${role}: ${err.message}`));
    c.on('ready', () => status?.('ready', role));
    c.on('reconnecting', () => status?.('reconnecting', role));
    c.on('end', () => status?.('end', role));
    return c;
  }

  /** Resolves true once the command connection is ready, false after `timeoutMs`. */
  async waitReady(timeoutMs = 5000): Promise<boolean> {
    if (this.client.status === 'ready') return true;
    return new Promise<boolean>((done) => {
      const t = setTimeout(() => {
        this.client.off('ready', ok);
        done(false);
      }, timeoutMs);
      const ok = (): void => {
        clearTimeout(t);
        done(true);
      };
      this.client.once('ready', ok);
    });
  }

  /** Connection state of the command connection (`ready` when usable). */
  get status(): string {
    return this.client.status;
  }

  private k(key: string): string {
    return `${this.prefix}k:${key}`;
  }

  private b(key: string): string {
    return `${this.prefix}tb:${key}`;
  }

  private ch(channel: string): string {
    return `${this.prefix}ch:${channel}`;
  }

  private async run<T>(f: () => Promise<T>): Promise<T> {
    if (this.closed) throw unavailable(new Error('state store closed'));
    try {
      return await f();
    } catch (err) {
      throw unavailable(err);
    }
  }

  async putIfAbsent(key: string, ttlMs: number): Promise<boolean> {
    const r = await this.run(() => this.client.set(this.k(key), '1', 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX'));
    return r === 'OK';
  }

  async takeToken(key: string, limit: TokenBucketLimit, cost = 1): Promise<TokenBucketResult> {
    const [allowed, tokens, retry] = await this.run(() => (this.client as unknown as Scripts).bastionTakeToken(this.b(key), limit.ratePerSecond, limit.burst, cost));
    if (allowed === 1) return { allowed: true, remaining: Math.floor(Number(tokens)), retryAfterMs: 0 };
    return { allowed: false, remaining: 0, retryAfterMs: retry < 0 ? Number.POSITIVE_INFINITY : retry };
  }

  async increment(key: string, by: number, ttlMs: number): Promise<number> {
    const v = await this.run(() => (this.client as unknown as Scripts).bastionIncrement(this.k(key), by, Math.max(1, Math.ceil(ttlMs))));
    return Number(v);
  }

  async getOrCreate(key: string, value: string): Promise<string> {
    return this.run(() => (this.client as unknown as Scripts).bastionGetOrCreate(this.k(key), value));
  }

  async get(key: string): Promise<string | undefined> {
    const v = await this.run(() => this.client.get(this.k(key)));
    return v ?? undefined;
  }

  async set(key: string, value: string, ttlMs?: number): Promise<void> {
    await this.run(() => (ttlMs === undefined ? this.client.set(this.k(key), value) : this.client.set(this.k(key), value, 'PX', Math.max(1, Math.ceil(ttlMs)))));
  }

  async delete(key: string): Promise<void> {
    // Two keys may hash to different cluster slots: delete them one by one.
    await this.run(async () => {
      await this.client.del(this.k(key));
      await this.client.del(this.b(key));
    });
  }

  async keys(prefix: string): Promise<string[]> {
    const base = this.k('');
    const match = `${globEscape(base + prefix)}*`;
    const nodes: Redis[] = this.client instanceof Cluster ? this.client.nodes('master') : [this.client];
    const out = new Set<string>();
    await this.run(async () => {
      for (const node of nodes) {
        let cursor = '0';
        do {
          const [next, batch] = await node.scan(cursor, 'MATCH', match, 'COUNT', 1000);
          for (const k of batch) out.add(k.slice(base.length));
          cursor = next;
        } while (cursor !== '0');
      }
    });
    return [...out];
  }

  async publish(channel: string, message: string): Promise<void> {
    await this.run(() => this.client.publish(this.ch(channel), message));
  }

  async subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>> {
    if (this.closed) throw unavailable(new Error('state store closed'));
    if (!this.subscriber) {
      // Offline queue on for this connection only: a subscription made while Redis is away is
      // sent when it connects, and ioredis re-subscribes after every reconnect.
      const sub = this.connect({ enableOfflineQueue: true, commandTimeout: undefined, maxRetriesPerRequest: null, autoResubscribe: true }, 'subscriber');
      sub.on('message', (ch: string, message: string) => {
        const hs = this.handlers.get(ch);
        if (!hs) return;
        for (const h of [...hs]) {
          try {
            h(message);
          } catch {
            /* a failing handler must not stop the others */
          }
        }
      });
      this.subscriber = sub;
    }
    const full = this.ch(channel);
    let hs = this.handlers.get(full);
    if (!hs) {
      hs = new Set();
      this.handlers.set(full, hs);
      // Wait for the confirmation when Redis is there (so a message published after this call
      // returns is delivered); when it is not, the subscription stays queued for the reconnect.
      const done = this.subscriber.subscribe(full).catch(() => undefined);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([done, new Promise((r) => (timer = setTimeout(r, this.options.commandTimeoutMs ?? 1000)))]);
      clearTimeout(timer);
    }
    hs.add(handler);
    return async () => {
      const set = this.handlers.get(full);
      if (!set) return;
      set.delete(handler);
      if (set.size === 0) {
        this.handlers.delete(full);
        await this.subscriber?.unsubscribe(full).catch(() => undefined);
      }
    };
  }

  /** True when the subscriber connection is up (messages published now will arrive). */
  get subscribed(): boolean {
    return this.subscriber?.status === 'ready';
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.handlers.clear();
    const quit = async (c: Client | undefined): Promise<void> => {
      if (!c) return;
      try {
        if (c.status === 'ready') await c.quit();
        else c.disconnect();
      } catch {
        c.disconnect();
      }
    };
    await Promise.all([quit(this.client), quit(this.subscriber)]);
  }
}
