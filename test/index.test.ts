/** The exported API is a contract: this list changes only on purpose. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as api from '../src/index.js';

test('public exports', () => {
  assert.deepEqual(Object.keys(api).sort(), [
    'BastionError',
    'ERROR_CODES',
    'MemoryStateStore',
    'RedisStateStore',
    'canonicalResource',
    'configJsonSchema',
    'isBastionError',
    'loadConfigFile',
    'parseConfig',
    'startGateway',
    'startGatewayFromConfig',
    'toWire',
  ]);
});

test('protocol versions match the SDK', async () => {
  const sdk = await import('@modelcontextprotocol/sdk/types.js');
  const ours = await import('../src/session/protocol.js');
  assert.deepEqual([...ours.SUPPORTED_PROTOCOL_VERSIONS], sdk.SUPPORTED_PROTOCOL_VERSIONS);
  assert.equal(ours.LATEST_PROTOCOL_VERSION, sdk.LATEST_PROTOCOL_VERSION);
});
