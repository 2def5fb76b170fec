/**
 * application.quarantine, initialize results: every list the server offers is declared
 * `listChanged`, since a quarantine or release makes the gateway send list_changed for it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStateStore } from '../../../src/stores/memory.js';
import { Containment } from '../../../src/containment/containment.js';
import { quarantineStage } from '../../../src/stages/application/quarantine.js';
import type { MessageContext } from '../../../src/pipeline/context.js';
import type { JsonRpcMessage } from '../../../src/pipeline/messages.js';

const stage = quarantineStage({ containment: new Containment(new MemoryStateStore()) });
const ctx = { mount: { name: 'notes' }, method: 'initialize' } as unknown as MessageContext;

test('initialize: tools, prompts and resources get listChanged: true; other capabilities and fields are left as they are', async () => {
  const msg = {
    jsonrpc: '2.0',
    id: 1,
    result: { protocolVersion: '2025-11-25', serverInfo: { name: 'x', version: '1' }, capabilities: { tools: {}, prompts: { listChanged: false }, logging: {}, resources: { subscribe: true } } },
  } as JsonRpcMessage;
  const out = (await stage.onUpstreamMessage!(ctx, msg)) as unknown as { result: { capabilities: Record<string, unknown>; serverInfo: unknown } };
  assert.deepEqual(out.result.capabilities, { tools: { listChanged: true }, prompts: { listChanged: true }, logging: {}, resources: { subscribe: true, listChanged: true } });
  assert.deepEqual(out.result.serverInfo, { name: 'x', version: '1' });
});

test('initialize: a list the server does not offer is not added; a result without capabilities passes unchanged', async () => {
  const msg = { jsonrpc: '2.0', id: 1, result: { protocolVersion: '2025-11-25', capabilities: { tools: { listChanged: true } } } } as JsonRpcMessage;
  assert.equal(await stage.onUpstreamMessage!(ctx, msg), msg);
  const bare = { jsonrpc: '2.0', id: 2, result: { protocolVersion: '2025-11-25' } } as JsonRpcMessage;
  assert.equal(await stage.onUpstreamMessage!(ctx, bare), bare);
});
