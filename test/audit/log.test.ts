import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createAuditLog, auditUnavailableError } from '../../src/audit/log.js';
import { toWire } from '../../src/errors.js';
import { MemorySink, SECRETS, assertNoSecrets, captureLogger, secretLadenEvent, until } from './helpers.js';

const fastRetry = { initialDelayMs: 2, maxDelayMs: 10 };

test('emit is synchronous, never throws, and events reach every sink in order, scrubbed and summarized', async () => {
  const a = new MemorySink('a');
  const b = new MemorySink('b');
  const log = createAuditLog({ sinks: [a, { sink: b, batchSize: 7 }], now: () => Date.UTC(2026, 0, 1) });
  for (let i = 0; i < 50; i++) log.emit(secretLadenEvent(i));
  // Nothing was written synchronously: emit only queues.
  assert.equal(a.events.length, 0);
  // A hostile event (throwing getter) does not throw out of emit.
  const hostile = { type: 'tool.call.completed', outcome: 'success' } as Record<string, unknown>;
  Object.defineProperty(hostile, 'boom', { enumerable: true, get: () => { throw new Error('boom'); } });
  assert.doesNotThrow(() => log.emit(hostile as never));
  await log.flush();
  assert.equal(a.events.length, 50);
  assert.equal(b.events.length, 50);
  assert.ok(b.writes >= 8, 'batches of at most 7');
  assert.deepEqual(a.events.map((e) => e.requestId), Array.from({ length: 50 }, (_, i) => `req-${i}`));
  const e = a.events[0]!;
  assert.equal(e.time, '2026-01-01T00:00:00.000Z');
  assert.match(String(e.id), /^[0-9a-f-]{36}$/);
  const args = e.args as Record<string, unknown>;
  assert.equal(args.password, '[redacted]');
  assert.deepEqual(Object.keys(args.big as object).sort(), ['$summary', 'head', 'length', 'sha256']);
  assert.equal((e.headers as Record<string, unknown>).authorization, '[redacted]');
  assertNoSecrets(JSON.stringify(a.events), 'memory sink');
  assert.equal(log.stats().refused, 1);
  await log.close();
  assert.ok(a.closed && b.closed);
});

test('block policy: a dead sink fills the queue, isAccepting() turns false (503), the other sink is unaffected, and recovery delivers every event', async () => {
  const healthy = new MemorySink('healthy');
  const dead = new MemorySink('dead');
  dead.failing = true;
  const { lines, logger } = captureLogger();
  const log = createAuditLog({ sinks: [healthy, { sink: dead, retry: fastRetry, batchSize: 10 }], queue: { maxEvents: 100, onFull: 'block' }, logger });
  for (let i = 0; i < 99; i++) log.emit(secretLadenEvent(i));
  await until(() => healthy.events.length === 99, 'healthy sink got everything');
  assert.equal(log.isAccepting(), true);
  log.emit(secretLadenEvent(99));
  assert.equal(log.isAccepting(), false, 'queue at maxEvents with a dead sink: refuse new requests');
  // The server maps this to 503 ERR_BASTION_AUDIT_UNAVAILABLE.
  const wire = toWire(auditUnavailableError());
  assert.equal(wire.status, 503);
  assert.match(wire.body.error.message, /audit/);
  // In-flight requests may still emit: the reserve takes them, nothing lost.
  for (let i = 100; i < 150; i++) log.emit(secretLadenEvent(i));
  assert.equal(log.stats().refused, 0);
  await until(() => dead.failures >= 3, 'retried with backoff');
  assert.ok(lines.some((l) => l.level === 'error' && /audit sink is down/.test(l.msg)));
  dead.failing = false;
  await until(() => dead.events.length === 150, 'dead sink recovered and caught up');
  assert.deepEqual(dead.events.map((e) => e.requestId), Array.from({ length: 150 }, (_, i) => `req-${i}`), 'nothing lost, in order');
  assert.equal(log.isAccepting(), true);
  assert.ok(lines.some((l) => l.level === 'info' && /recovered/.test(l.msg)));
  assertNoSecrets(JSON.stringify(dead.events) + JSON.stringify(healthy.events) + JSON.stringify(lines), 'block test sinks and logs');
  await log.close();
});

test('block policy: beyond the reserve an event is lost, counted and logged loudly, never thrown', async () => {
  const dead = new MemorySink('dead');
  dead.failing = true;
  const { lines, logger } = captureLogger();
  const log = createAuditLog({ sinks: [{ sink: dead, retry: fastRetry }], queue: { maxEvents: 10, onFull: 'block' }, logger });
  for (let i = 0; i < 200; i++) log.emit(secretLadenEvent(i));
  const s = log.stats();
  assert.equal(s.accepting, false);
  assert.equal(s.depth, 110, 'maxEvents + reserve of 100');
  assert.equal(s.refused, 90);
  assert.equal(s.sinks[0]!.dropped, 90);
  assert.ok(lines.some((l) => l.level === 'error' && /AUDIT EVENT LOST/.test(l.msg)));
  await log.close(50);
});

test('drop policy: the dead sink loses the oldest events (counted, logged, and recorded as audit.events.dropped), the healthy sink loses nothing', async () => {
  const healthy = new MemorySink('healthy');
  const dead = new MemorySink('dead');
  dead.failing = true;
  const { lines, logger } = captureLogger();
  const dropped: Array<[string, number]> = [];
  const log = createAuditLog({
    sinks: [healthy, { sink: dead, retry: fastRetry, batchSize: 5 }],
    queue: { maxEvents: 20, onFull: 'drop' },
    logger,
    metrics: { auditDropped: (sink, n) => dropped.push([sink, n]) },
  });
  for (let i = 0; i < 100; i++) {
    log.emit(secretLadenEvent(i));
    if (i % 10 === 9) await until(() => healthy.events.length === i + 1, 'healthy keeps up');
  }
  assert.equal(log.isAccepting(), true, 'drop never refuses requests');
  const s = log.stats();
  const deadStats = s.sinks.find((x) => x.name === 'dead')!;
  // 5 events sit in the failing batch being retried; 20 in the queue; the rest dropped.
  assert.equal(deadStats.dropped, 75);
  assert.equal(dropped.reduce((a, [, n]) => a + n, 0), 75);
  assert.ok(dropped.every(([name]) => name === 'dead'));
  assert.ok(lines.some((l) => l.level === 'error' && /AUDIT EVENTS DROPPED/.test(l.msg)));
  dead.failing = false;
  await log.flush();
  assert.equal(healthy.events.length, 100);
  const types = dead.events.map((e) => e.type);
  const marker = dead.events.find((e) => e.type === 'audit.events.dropped');
  assert.ok(marker, `the gap is on the record: ${types.join(',')}`);
  assert.equal(marker.count, 75);
  assert.equal(dead.events.filter((e) => e.type !== 'audit.events.dropped').length, 25);
  assert.equal(dead.events.at(-1)!.requestId, 'req-99');
  await log.close();
});

test('flush() waits for a sink that recovers; close() with a sink that never recovers returns after its timeout and reports the loss', async () => {
  const flaky = new MemorySink('flaky');
  flaky.failing = true;
  const { lines, logger } = captureLogger();
  const log = createAuditLog({ sinks: [{ sink: flaky, retry: fastRetry }], logger });
  log.emit(secretLadenEvent(1));
  let flushed = false;
  const f = log.flush().then(() => (flushed = true));
  await until(() => flaky.failures >= 2, 'failing');
  assert.equal(flushed, false);
  flaky.failing = false;
  await f;
  assert.equal(flaky.events.length, 1);

  flaky.failing = true;
  log.emit(secretLadenEvent(2));
  log.emit(secretLadenEvent(3));
  await log.close(30);
  assert.ok(lines.some((l) => /LOST at shutdown/.test(l.msg)));
  assert.equal(log.isAccepting(), false);
  log.emit(secretLadenEvent(4));
  assert.equal(log.stats().refused, 1, 'emit after close is counted, not thrown');
});

test('a sink that rejects a batch permanently (SinkRejectedError) does not wedge the queue', async () => {
  const { SinkRejectedError } = await import('../../src/audit/log.js');
  let calls = 0;
  const got: string[] = [];
  const sink = {
    name: 'picky',
    async write(events: readonly { requestId?: string }[]) {
      calls++;
      if (calls === 1) throw new SinkRejectedError('400 bad payload');
      got.push(...events.map((e) => e.requestId!));
    },
    async close() {},
  };
  const { lines, logger } = captureLogger();
  const log = createAuditLog({ sinks: [{ sink, batchSize: 1 }], logger });
  log.emit(secretLadenEvent(1));
  log.emit(secretLadenEvent(2));
  await log.flush();
  assert.deepEqual(got, ['req-2']);
  assert.equal(log.stats().sinks[0]!.dropped, 1);
  assert.ok(lines.some((l) => /rejected a batch permanently/.test(l.msg)));
  await log.close();
});

test('an event type missing from the catalog is logged once as a warning', async () => {
  const s = new MemorySink();
  const { lines, logger } = captureLogger();
  const log = createAuditLog({ sinks: [s], logger });
  log.emit({ type: 'made.up', outcome: 'info' });
  log.emit({ type: 'made.up', outcome: 'info' });
  await log.flush();
  assert.equal(lines.filter((l) => l.level === 'warn' && /not in the catalog/.test(l.msg)).length, 1);
  await log.close();
});

test('prepared events: type, id, time, outcome first, then the emitted fields in their order; an own id keeps its place; defaults for what is missing', async () => {
  const { prepareEvent, isoTime } = await import('../../src/audit/log.js');
  const at = Date.UTC(2026, 0, 2, 3, 4, 5, 67);
  const e = prepareEvent({ outcome: 'success', type: 'tool.call.completed', requestId: 'r1', sessionId: undefined, mount: 'echo', args: { b: 1, a: 2 }, durations: { 'transport.origin': 0.1, total: 0.5 }, status: 'ok' }, at);
  assert.deepEqual(Object.keys(e), ['type', 'id', 'time', 'outcome', 'requestId', 'mount', 'args', 'durations', 'status']);
  assert.deepEqual(Object.keys(e.args as object), ['b', 'a']);
  assert.equal(e.time, '2026-01-02T03:04:05.067Z');
  assert.match(String(e.id), /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  // An event's own id, time and outcome are kept (an id that is not a string too, as before).
  const own = prepareEvent({ type: 'x.y.happened', reason: 'r', id: 'my-id', time: 'then', outcome: 'denied' } as never, at);
  assert.deepEqual(JSON.stringify(own), '{"type":"x.y.happened","id":"my-id","time":"then","outcome":"denied","reason":"r"}');
  assert.equal(JSON.stringify(prepareEvent({ type: 't', id: 7 } as never, at)), '{"type":"t","id":7,"time":"2026-01-02T03:04:05.067Z","outcome":"info"}');
  // Missing or odd envelope values get the defaults.
  const odd = prepareEvent({ type: 5, time: 6, outcome: undefined, z: 1 } as never, at);
  assert.deepEqual(Object.keys(odd), ['type', 'id', 'time', 'outcome', 'z']);
  assert.equal(odd.type, 'unknown');
  assert.equal(odd.time, '2026-01-02T03:04:05.067Z');
  assert.equal(odd.outcome, 'info');
  // Fields are scrubbed here too, and a secret key at the top is redacted.
  const s = prepareEvent({ type: 't', outcome: 'info', token: 'abc', reason: `Bearer ${SECRETS.opaque}` } as never, at);
  assert.equal(s.token, '[redacted]');
  assert.equal(s.reason, 'Bearer [redacted]');
  // The time formatting kept per second gives what toISOString gives.
  for (const t of [0, 1, 999, 1000, at, at + 1, at + 933, at + 1000, Date.UTC(9999, 11, 31, 23, 59, 59, 999), 8.64e15, -1, 1.5]) {
    assert.equal(isoTime(t), new Date(t).toISOString(), String(t));
  }
  assert.throws(() => isoTime(8.64e15 + 1), RangeError);
});

test('emit keeps what the event held when it was emitted: a field changed afterwards does not change the record', async () => {
  const s = new MemorySink();
  const log = createAuditLog({ sinks: [s] });
  const event = { type: 'tool.call.completed', outcome: 'success', requestId: 'before', status: 'ok' } as Record<string, unknown>;
  log.emit(event as never);
  event.requestId = 'after';
  event.extra = 'added later';
  await log.flush();
  assert.equal(s.events[0]!.requestId, 'before');
  assert.equal('extra' in s.events[0]!, false);
  await log.close();
});

test('an event that cannot be cleaned takes its place on the record as a failure, and the drain goes on', async () => {
  const written: Array<Record<string, unknown>> = [];
  const log = createAuditLog({ sinks: [{ name: 'mem', write: async (events) => void written.push(...(events as never[])), close: async () => {} }] });
  const hostile = { type: 'tool.call.completed', outcome: 'success', args: { nested: {} as Record<string, unknown> } };
  Object.defineProperty(hostile.args.nested, 'boom', { enumerable: true, get() { throw new Error('getter'); } });
  log.emit(hostile as never);
  log.emit({ type: 'session.created', outcome: 'success' } as never);
  await log.flush(2000);
  assert.equal(written.length, 2);
  assert.equal(written[0]!.type, 'tool.call.completed');
  assert.equal(written[0]!.outcome, 'failure');
  assert.equal(written[0]!.reason, 'audit_event_unreadable');
  assert.equal(written[1]!.type, 'session.created');
  await log.close();
});

test('tool arguments in the record go through the output sanitizer\'s secret detectors too (webhooks, SaaS keys, PEM bodies)', async () => {
  const { FAKE } = await import('../sanitizer/fakes.js');
  const written: Array<Record<string, unknown>> = [];
  const log = createAuditLog({ sinks: [{ name: 'mem', write: async (events) => void written.push(...(events as never[])), close: async () => {} }] });
  const secrets = [FAKE.slackWebhook, FAKE.sendgridKey, FAKE.pemBody];
  log.emit({ type: 'tool.call.completed', outcome: 'success', tool: 'post', args: { url: secrets[0], note: `key ${secrets[1]}`, blob: `value: ${secrets[2]}`, path: '/tmp/report.txt', pin: '4921' } } as never);
  await log.flush(2000);
  const text = JSON.stringify(written);
  for (const s of secrets) assert.ok(!text.includes(s), 'no secret in clear');
  const args = written[0]!.args as Record<string, unknown>;
  assert.equal(args.path, '/tmp/report.txt', 'ordinary arguments stay readable');
  assert.equal(args.pin, '[redacted]', 'secret-named keys use the audit placeholder');
  await log.close();
});
