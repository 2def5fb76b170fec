/**
 * `npx tsx bench/redis-vs-memory.ts [--iterations N] [--url redis://127.0.0.1:6379]`: the cost of
 * the state-store work one authenticated tools/call does, in memory mode and in Redis mode:
 * a DPoP replay check (putIfAbsent) and two rate-limit buckets (takeToken: per subject, per
 * tool), sequential as the stages run them. Revocation and quarantine checks read the local
 * containment cache in both modes (no store round trip) and are measured too.
 * Prints microseconds per call for each mode and the Redis/memory ratio.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { MemoryStateStore } from '../src/stores/memory.js';
import { RedisStateStore } from '../src/stores/redis.js';
import type { StateStore } from '../src/stores/types.js';
import { Containment } from '../src/containment/containment.js';
import { ANONYMOUS } from '../src/identity/types.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : dflt;
};
const N = Number(opt('iterations', '5000'));
const URL_ = opt('url', 'redis://127.0.0.1:6379');

async function perCall(store: StateStore): Promise<number> {
  const limit = { ratePerSecond: 1e9, burst: 1e9 };
  const one = async (i: number): Promise<void> => {
    await store.putIfAbsent(`dpop:jti:bench:${randomUUID()}`, 60_000);
    await store.takeToken(`rl:g:sub:bench-${i % 16}`, limit);
    await store.takeToken(`rl:t:notes:echo:sub:bench-${i % 16}`, limit);
  };
  for (let i = 0; i < Math.min(500, N); i++) await one(i); // warm-up
  const t0 = performance.now();
  for (let i = 0; i < N; i++) await one(i);
  return ((performance.now() - t0) * 1000) / N;
}

async function cacheCheck(store: StateStore): Promise<number> {
  const c = new Containment(store, { pollMs: 60_000, staleAfterMs: 3_600_000 });
  await c.start();
  await c.revoke('subject', 'someone-else', { by: 'bench' });
  const p = { ...ANONYMOUS, subject: 'alice', issuer: 'https://as', clientId: 'c', authMethod: 'bearer' as const, tokenHash: 'h', tokenId: 'j' };
  const M = N * 20;
  const t0 = performance.now();
  for (let i = 0; i < M; i++) {
    c.revocationOf(p);
    c.quarantineOf('notes', 'echo');
  }
  const us = ((performance.now() - t0) * 1000) / M;
  await c.unrevoke('subject', 'someone-else');
  await c.close();
  return us;
}

const memory = new MemoryStateStore();
const redis = new RedisStateStore({ url: URL_, keyPrefix: `bastion-bench:${randomUUID().slice(0, 8)}:` });
if (!(await redis.waitReady(5000))) {
  process.stderr.write(`Redis at ${URL_} is not answering; start it (redis-server --port 6379 --save '' --appendonly no)\n`);
  process.exit(1);
}
const m = await perCall(memory);
const r = await perCall(redis);
const mc = await cacheCheck(memory);
const rc = await cacheCheck(redis);
process.stdout.write(
  [
    `state-store work of one tools/call (putIfAbsent + 2 x takeToken, sequential), ${N} calls:`,
    `  memory: ${m.toFixed(1)} µs/call`,
    `  redis:  ${r.toFixed(1)} µs/call (${URL_}, one connection, loopback)`,
    `  ratio redis/memory: ${(r / m).toFixed(1)}x; added per call: ${((r - m) / 1000).toFixed(3)} ms`,
    `revocation + quarantine check (local cache, both modes): memory ${mc.toFixed(3)} µs, redis ${rc.toFixed(3)} µs`,
    '',
  ].join('\n'),
);
await memory.close();
await redis.close();
