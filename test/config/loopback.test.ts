import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isLoopbackHost } from '../../src/config/loopback.js';
import { isLoopbackHost as scanLoopback } from '../../src/scan/transport.js';

test('isLoopbackHost: localhost, 127.0.0.0/8 and ::1 in any spelling are loopback', () => {
  for (const h of ['localhost', 'LOCALHOST', '127.0.0.1', '127.1.2.3', '127.255.255.255', '::1', '[::1]', '0:0:0:0:0:0:0:1', '[0::1]', '::ffff:127.0.0.1', '[::ffff:7f00:1]']) {
    assert.equal(isLoopbackHost(h), true, h);
  }
});

test('isLoopbackHost: DNS names that only start like a loopback address, and every other address, are not', () => {
  for (const h of ['127.example.com', '127.0.0.1.nip.io', '127.0.0.1.', 'localhost.example.com', 'foo.localhost', '0.0.0.0', '::', '', '10.0.0.1', '128.0.0.1', '::2', '::ffff:10.0.0.1', '[::1', '127.0.0.256', '1.127.0.0']) {
    assert.equal(isLoopbackHost(h), false, h);
  }
});

test('scan: *.localhost names count as loopback (RFC 6761), 127.-prefixed DNS names do not', () => {
  assert.equal(scanLoopback('app.localhost'), true);
  assert.equal(scanLoopback('app.localhost.'), true);
  assert.equal(scanLoopback('127.0.0.1'), true);
  assert.equal(scanLoopback('127.attacker.example'), false);
  assert.equal(scanLoopback('localhost.attacker.example'), false);
});
