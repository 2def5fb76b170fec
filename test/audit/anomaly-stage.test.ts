import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStateStore } from '../../src/stores/memory.js';
import { anomalySchema } from '../../src/config/audit.js';
import { createAnomalyDetector } from '../../src/anomaly/detector.js';
import { anomalyStage } from '../../src/audit/anomaly-stage.js';
import { createAuditLog } from '../../src/audit/log.js';
import { isBastionError, toWire } from '../../src/errors.js';
import { ANONYMOUS } from '../../src/identity/types.js';
import type { RequestContext } from '../../src/pipeline/context.js';
import { MemorySink, until } from './helpers.js';

const TOOLS = new Map([['echo', { name: 'echo' }]]);

function ctx(method: string, tool?: string, tokenHash = 'th-1'): RequestContext {
  return {
    requestId: 'r',
    startedAt: 0,
    mount: { name: 'notes', config: {} as never, resource: 'x' },
    http: { method: 'POST', path: '/mcp/notes', query: '', headers: {}, remoteAddress: '127.0.0.1', secure: false, peerCertificate: undefined } as never,
    session: { id: 's', upstreamTools: async () => TOOLS } as never,
    message: { jsonrpc: '2.0', id: 1, method, params: tool ? { name: tool, arguments: {} } : {} } as never,
    principal: { ...ANONYMOUS, subject: 'alice', issuer: 'https://as', authMethod: 'bearer', tokenHash },
    decisions: [],
    timings: {},
    locals: {},
  };
}

async function refusal(p: void | Promise<void>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  return undefined;
}

test('probing unknown tools: anomaly.detected + incident.token.suspended are emitted, the next request is refused until reinstated', async () => {
  const store = new MemoryStateStore();
  const detector = createAnomalyDetector({ store, config: anomalySchema.parse({ enabled: true, actions: { enumeration: 'suspend' } }) });
  const sink = new MemorySink();
  const audit = createAuditLog({ sinks: [sink] });
  const seen: string[] = [];
  const stage = anomalyStage({ detector, audit, metrics: { anomalyDetected: (k, a) => seen.push(`${k}:${a}`) } });
  assert.equal(stage.name, 'authorization.anomaly');
  await stage.onRequest!(ctx('tools/call', 'echo'));
  for (let i = 0; i < 5; i++) await stage.onRequest!(ctx('tools/call', `admin_${i}`));
  await until(() => seen.length === 1, 'finding reported');
  assert.deepEqual(seen, ['unknown_tool:suspend']);
  await audit.flush();
  assert.deepEqual(sink.events.map((e) => e.type), ['anomaly.detected', 'incident.token.suspended']);
  assert.equal(sink.events[0]!.kind, 'unknown_tool');
  assert.equal(sink.events[0]!.requestId, 'r');
  const err = await refusal(stage.onRequest!(ctx('tools/call', 'echo')));
  assert.ok(isBastionError(err) && err.reason === 'subject_suspended', String(err));
  // Another credential is not affected; anonymous requests are not judged.
  assert.equal(await refusal(stage.onRequest!(ctx('tools/call', 'echo', 'th-2'))), undefined);
  await detector.reinstate(detector.subjectId('th-1'));
  assert.equal(await refusal(stage.onRequest!(ctx('tools/call', 'echo'))), undefined);
  await audit.close();
  await store.close();
});

test('a throttled credential gets 429 with Retry-After', async () => {
  const store = new MemoryStateStore();
  const detector = createAnomalyDetector({
    store,
    config: anomalySchema.parse({ enabled: true, enumeration: { listCallsPerWindow: 3 }, actions: { enumeration: 'throttle' }, throttle: { ratePerSecond: 0.1, burst: 1 } }),
  });
  const audit = createAuditLog({ sinks: [new MemorySink()] });
  const stage = anomalyStage({ detector, audit });
  for (let i = 0; i < 3; i++) await stage.onRequest!(ctx('tools/list'));
  await until(() => (audit as unknown as { stats(): { emitted: number } }).stats().emitted === 1, 'finding');
  assert.equal(await refusal(stage.onRequest!(ctx('tools/list'))), undefined, 'the burst allows one');
  const err = await refusal(stage.onRequest!(ctx('tools/list')));
  assert.ok(isBastionError(err) && err.code === 'ERR_BASTION_RATE_LIMITED');
  const wire = toWire(err);
  assert.equal(wire.status, 429);
  assert.ok(Number(wire.headers['Retry-After']) >= 1);
  await audit.close();
  await store.close();
});
