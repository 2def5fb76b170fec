import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toWire, type BastionError } from '../../../src/errors.js';
import { compilePolicy } from '../../../src/policy/compile.js';
import { parseRate } from '../../../src/policy/rate.js';
import { clientIpRateLimitStage, rateLimitStage } from '../../../src/stages/authorization/rate-limit.js';
import { MemoryStateStore } from '../../../src/stores/memory.js';
import type { StateStore } from '../../../src/stores/types.js';
import { BastionError as BE } from '../../../src/errors.js';
import type { Principal } from '../../../src/identity/types.js';
import { config, NOW, principal } from '../../policy/helpers.js';
import { call, fakeSession, RecordingAudit, requestCtx, tool } from './helpers.js';

function setup(server: Record<string, unknown>, global: Record<string, unknown> = {}) {
  let t = NOW;
  const clock = { now: () => t, advance: (ms: number) => (t += ms) };
  const store = new MemoryStateStore({ now: clock.now });
  const cfg = config({ notes: server }, global);
  const audit = new RecordingAudit();
  const stage = rateLimitStage({ policy: compilePolicy(cfg), store, audit, now: clock.now });
  // The per-client-IP limits are their own stage (transport phase), run first as in the gateway.
  const ipStage = clientIpRateLimitStage({ policy: compilePolicy(cfg), store, audit, now: clock.now });
  const session = fakeSession([tool('write_note'), tool('read_note'), tool('hidden_tool')]);
  const run = async (opts: { p?: Principal | undefined; ip?: string; tool?: string }): Promise<BastionError | undefined> => {
    const ctx = requestCtx({ config: cfg, message: call(opts.tool ?? 'read_note', {}), principal: 'p' in opts ? opts.p : principal(), session, ip: opts.ip ?? '10.0.0.1' });
    try {
      await ipStage.onRequest!(ctx);
      await stage.onRequest!(ctx);
      return undefined;
    } catch (err) {
      return err as BastionError;
    }
  };
  return { clock, store, audit, stage, run };
}

test('rates parse as token buckets with bursts', () => {
  assert.deepEqual(parseRate('10/minute'), { ratePerSecond: 10 / 60, burst: 10, text: '10/minute' });
  assert.deepEqual(parseRate({ rate: '5/second', burst: 20 }), { ratePerSecond: 5, burst: 20, text: '5/second' });
  assert.deepEqual(parseRate('3600/h'), { ratePerSecond: 1, burst: 3600, text: '3600/h' });
  assert.throws(() => parseRate('10/day'));
});

test('per-tool limit: 429 with Retry-After when over, and it resets on time', async () => {
  const s = setup({ defaultTool: 'allow', tools: { write_note: { rateLimit: '2/minute' } } });
  assert.equal(await s.run({ tool: 'write_note' }), undefined);
  assert.equal(await s.run({ tool: 'write_note' }), undefined);
  const err = await s.run({ tool: 'write_note' });
  assert.equal(err?.code, 'ERR_BASTION_RATE_LIMITED');
  const w = toWire(err);
  assert.equal(w.status, 429);
  assert.equal(w.headers['Retry-After'], '30');
  assert.equal(w.body.error.code, -32029);
  // Other tools and other subjects are not affected.
  assert.equal(await s.run({ tool: 'read_note' }), undefined);
  assert.equal(await s.run({ tool: 'write_note', p: principal({ subject: 'bob' }) }), undefined);
  // Audit: rate_limit.exceeded and tool.call.denied.
  const types = s.audit.events.map((e) => e.type);
  assert.deepEqual(types, ['rate_limit.exceeded', 'tool.call.denied']);
  assert.equal(s.audit.events[0]!.limit, 'servers.notes.tools.write_note.rateLimit');
  assert.equal(s.audit.events[0]!.retryAfterMs, 30_000);
  assert.equal(s.audit.events[1]!.reason, 'rate_limited');
  // 29 s later: still refused; 30 s: one more token.
  s.clock.advance(29_000);
  assert.equal((await s.run({ tool: 'write_note' }))?.headers['Retry-After'], '1');
  s.clock.advance(1_000);
  assert.equal(await s.run({ tool: 'write_note' }), undefined);
  assert.equal((await s.run({ tool: 'write_note' }))?.code, 'ERR_BASTION_RATE_LIMITED');
  // A full minute refills the burst.
  s.clock.advance(60_000);
  assert.equal(await s.run({ tool: 'write_note' }), undefined);
  assert.equal(await s.run({ tool: 'write_note' }), undefined);
});

test('concurrent requests are never over-admitted', async () => {
  const s = setup({ defaultTool: 'allow', tools: { write_note: { rateLimit: { rate: '10/hour', burst: 25 } } } });
  const results = await Promise.all(Array.from({ length: 200 }, () => s.run({ tool: 'write_note' })));
  assert.equal(results.filter((r) => r === undefined).length, 25);
  assert.equal(results.filter((r) => r?.code === 'ERR_BASTION_RATE_LIMITED').length, 175);
});

test('concurrent requests through a store with real async gaps are never over-admitted', async () => {
  // A store whose every call yields to the event loop first (like a network store): atomicity
  // must come from takeToken, not from the stage running synchronously.
  const inner = new MemoryStateStore({ now: () => NOW });
  const slow: StateStore = Object.create(inner) as StateStore;
  slow.takeToken = async (key, limit, cost) => {
    await new Promise((r) => setImmediate(r));
    return inner.takeToken(key, limit, cost);
  };
  const cfg = config({ notes: { defaultTool: 'allow' } }, { rateLimit: { perClientIp: { rate: '1/hour', burst: 7 } } });
  const stage = clientIpRateLimitStage({ policy: compilePolicy(cfg), store: slow, audit: new RecordingAudit(), now: () => NOW });
  const session = fakeSession([tool('x')]);
  const outcomes = await Promise.all(
    Array.from({ length: 100 }, async () => {
      try {
        await stage.onRequest!(requestCtx({ config: cfg, message: call('x', {}), principal: principal(), session, ip: '192.0.2.1' }));
        return 'ok';
      } catch {
        return 'limited';
      }
    }),
  );
  assert.equal(outcomes.filter((o) => o === 'ok').length, 7);
});

test('global limits per client IP, subject and token', async () => {
  const s = setup({ defaultTool: 'allow' }, { rateLimit: { perClientIp: '2/minute', perSubject: '3/minute', perToken: '4/minute' } });
  // IP: 2 from one address, then refused; another address is fine.
  assert.equal(await s.run({ ip: '10.0.0.9', p: undefined }), undefined);
  assert.equal(await s.run({ ip: '10.0.0.9', p: undefined }), undefined);
  const e = await s.run({ ip: '10.0.0.9', p: undefined });
  assert.equal(e?.code, 'ERR_BASTION_RATE_LIMITED');
  assert.match(e!.message, /rateLimit\.perClientIp/);
  // Subject: 3 across IPs.
  const carol = (tokenHash: string) => principal({ subject: 'carol', tokenHash });
  assert.equal(await s.run({ ip: '10.1.0.1', p: carol('t1') }), undefined);
  assert.equal(await s.run({ ip: '10.1.0.2', p: carol('t2') }), undefined);
  assert.equal(await s.run({ ip: '10.1.0.3', p: carol('t3') }), undefined);
  assert.match((await s.run({ ip: '10.1.0.4', p: carol('t4') }))!.message, /rateLimit\.perSubject/);
  // Token: 4 across IPs and (impossible in practice, but keyed by token) subjects.
  for (let i = 0; i < 4; i++) assert.equal(await s.run({ ip: `10.2.0.${i}`, p: principal({ subject: `u${i}`, tokenHash: 'shared' }) }), undefined);
  assert.match((await s.run({ ip: '10.2.0.9', p: principal({ subject: 'u9', tokenHash: 'shared' }) }))!.message, /rateLimit\.perToken/);
});

test('mount limits: total and per subject', async () => {
  const s = setup({ defaultTool: 'allow', rateLimit: { total: '5/second', perSubject: { rate: '1/second', burst: 2 } } });
  assert.equal(await s.run({ p: principal({ subject: 'a' }) }), undefined);
  assert.equal(await s.run({ p: principal({ subject: 'a' }) }), undefined);
  assert.match((await s.run({ p: principal({ subject: 'a' }) }))!.message, /servers\.notes\.rateLimit\.perSubject/);
  assert.equal(await s.run({ p: principal({ subject: 'b' }) }), undefined);
  assert.equal(await s.run({ p: principal({ subject: 'c' }) }), undefined);
  // 5 tokens of the mount total are now taken (the refused request took one too: conservative).
  assert.match((await s.run({ p: principal({ subject: 'd' }) }))!.message, /servers\.notes\.rateLimit\.total/);
  s.clock.advance(1000);
  assert.equal(await s.run({ p: principal({ subject: 'd' }) }), undefined);
});

test('a hidden tool with a rate limit never answers 429 (no probing through rate limits)', async () => {
  const s = setup({ tools: { hidden_tool: { rateLimit: '1/hour', allow: { subjects: ['root'] } }, nonexistent: { rateLimit: '1/hour' } } });
  for (let i = 0; i < 5; i++) {
    assert.equal(await s.run({ tool: 'hidden_tool' }), undefined, 'left for the policy stage to answer as not found');
    assert.equal(await s.run({ tool: 'nonexistent' }), undefined);
  }
  assert.equal(s.audit.events.length, 0);
  // For the subject allowed to see it, the limit holds.
  assert.equal(await s.run({ tool: 'hidden_tool', p: principal({ subject: 'root' }) }), undefined);
  assert.equal((await s.run({ tool: 'hidden_tool', p: principal({ subject: 'root' }) }))?.code, 'ERR_BASTION_RATE_LIMITED');
});

test('a store that fails refuses the request (fail closed)', async () => {
  const cfg = config({ notes: { defaultTool: 'allow' } }, { rateLimit: { perClientIp: '10/second' } });
  const broken = new MemoryStateStore();
  broken.takeToken = async () => {
    throw new BE('ERR_BASTION_STATE_UNAVAILABLE', 'state store unreachable');
  };
  const stage = clientIpRateLimitStage({ policy: compilePolicy(cfg), store: broken, audit: new RecordingAudit() });
  await assert.rejects(
    Promise.resolve(stage.onRequest!(requestCtx({ config: cfg, message: call('x', {}), principal: principal(), session: fakeSession([]) }))),
    /state store unreachable/,
  );
  await broken.close();
});

test('end to end: per-client-IP limits count requests before identity, so a flood of bad tokens gets 429, not a signature check each', async () => {
  const { gateway, demoStdio, post, INIT } = await import('../../helpers/gateway.js');
  const { startIssuer, makeKey } = await import('../../identity/fixtures.js');
  const issuer = await startIssuer();
  const gw = await gateway({

    log: { level: 'silent' },
    auth: { issuers: [{ issuer: issuer.url, jwksUri: issuer.jwksUri }] },
    rateLimit: { perClientIp: { rate: '1/hour', burst: 3 } },
    servers: { notes: { stdio: demoStdio(), auth: { scopes: ['notes:read'] } } },
  } as never);
  try {
    // Signed by a key the issuer does not publish, under the issuer's kid: only a signature check refuses it.
    const forged = await issuer.mint({ aud: `${gw.url}/mcp/notes`, scope: 'notes:read' }, { key: await makeKey('ES256', 'key-1') });
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 5; i++) {
      const r = await post(`${gw.url}/mcp/notes`, INIT, { authorization: `Bearer ${forged}` });
      statuses.push(r.status);
      if (r.status === 429) retryAfter = r.headers.get('retry-after');
    }
    assert.deepEqual(statuses, [401, 401, 401, 429, 429]);
    assert.ok(retryAfter !== null && Number(retryAfter) >= 1, 'Retry-After on the 429');
  } finally {
    await gw.close();
    await issuer.close();
  }
});
