import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createAuditLog } from '../../src/audit/log.js';
import { auditGateStage } from '../../src/audit/gate.js';
import { isBastionError, toWire } from '../../src/errors.js';
import { MemorySink, until } from './helpers.js';

test('the audit gate refuses new requests with 503 ERR_BASTION_AUDIT_UNAVAILABLE while a dead sink holds the queue full, and lets them through once it drains', async () => {
  const dead = new MemorySink('dead');
  dead.failing = true;
  const log = createAuditLog({ sinks: [{ sink: dead, retry: { initialDelayMs: 2, maxDelayMs: 5 } }], queue: { maxEvents: 5, onFull: 'block' } });
  const gate = auditGateStage(log);
  const ctx = {} as never;
  assert.doesNotThrow(() => gate.onRequest!(ctx));
  for (let i = 0; i < 5; i++) log.emit({ type: 'auth.succeeded', outcome: 'success' });
  let err: unknown;
  try {
    gate.onRequest!(ctx);
  } catch (e) {
    err = e;
  }
  assert.ok(isBastionError(err) && err.code === 'ERR_BASTION_AUDIT_UNAVAILABLE');
  const wire = toWire(err);
  assert.equal(wire.status, 503);
  assert.equal(wire.headers['Retry-After'], '5');
  dead.failing = false;
  await until(() => log.isAccepting(), 'drained');
  assert.doesNotThrow(() => gate.onRequest!(ctx));
  await log.close();
  assert.throws(() => gate.onRequest!(ctx), /audit/, 'closed: refuse');
});
