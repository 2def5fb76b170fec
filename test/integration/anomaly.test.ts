/**
 * Anomaly detection through the wired gateway: a credential that probes for tools that do not
 * exist raises `anomaly.detected` and, with `actions.enumeration: suspend`, is refused from then
 * on; a credential that only makes ordinary calls raises nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { AuditEvent, AuditLog } from '../../src/audit/types.js';
import { demoStdio, gateway, post, rawSession } from '../helpers/gateway.js';

function memoryAudit(): AuditLog & { events: AuditEvent[] } {
  const events: AuditEvent[] = [];
  return { events, emit: (e) => void events.push(e), flush: async () => {}, close: async () => {} };
}

const key = (id: string) => ({ id, sha256: createHash('sha256').update(`${id}-key-0123456789abcdef`).digest('hex'), expiresAt: new Date(Date.now() + 86_400_000).toISOString() });

test('probing for unknown tools raises anomaly.detected and suspends that credential only', async () => {
  const audit = memoryAudit();
  const gw = await gateway(
    {
      auth: { apiKeys: { enabled: true, keys: [key('prober'), key('worker')] } },
      anomaly: { enabled: true, enumeration: { unknownToolCallsPerWindow: 5 }, actions: { enumeration: 'suspend' } },
      servers: { notes: { stdio: demoStdio(), tools: { echo: {} } } },
    } as never,
    { audit },
  );
  try {
    const url = `${gw.url}/mcp/notes`;
    const hdr = (id: string, sid: string) => ({ 'x-api-key': `${id}-key-0123456789abcdef`, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' });
    const probeSid = await rawSession(url, { 'x-api-key': 'prober-key-0123456789abcdef' });
    const workSid = await rawSession(url, { 'x-api-key': 'worker-key-0123456789abcdef' });
    const call = (id: string, sid: string, name: string, i: number) => post(url, { jsonrpc: '2.0', id: i, method: 'tools/call', params: { name, arguments: { text: 'x' } } }, hdr(id, sid));

    for (let i = 0; i < 10; i++) assert.equal((await call('worker', workSid, 'echo', i)).json.result.content[0].text, 'x');
    for (let i = 0; i < 8; i++) await call('prober', probeSid, `secret_tool_${i}`, 100 + i);
    await new Promise((r) => setTimeout(r, 200)); // observations are recorded off the request path

    const detected = audit.events.filter((e) => e.type === 'anomaly.detected');
    assert.ok(detected.length >= 1, 'the prober raised an anomaly');
    assert.ok(detected.every((e) => e.principal?.subject !== 'worker'), 'ordinary traffic raised none');
    const after = await call('prober', probeSid, 'echo', 200);
    assert.ok(after.json.error, `the suspended credential is refused: ${after.text}`);
    const worker = await call('worker', workSid, 'echo', 201);
    assert.equal(worker.json.result.content[0].text, 'x');
  } finally {
    await gw.close();
  }
});
