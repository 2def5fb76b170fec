import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CidrSet, ipToBigInt } from '../../src/policy/cidr.js';

test('IPv4 CIDRs', () => {
  const s = new CidrSet(['10.0.0.0/8', '192.168.1.7', '172.16.0.0/12']);
  assert.ok(s.has('10.255.0.1'));
  assert.ok(s.has('192.168.1.7'));
  assert.ok(!s.has('192.168.1.8'));
  assert.ok(s.has('172.31.255.255'));
  assert.ok(!s.has('172.32.0.0'));
  assert.ok(!s.has('11.0.0.1'));
});

test('IPv6 CIDRs, compressed forms, zones and embedded IPv4', () => {
  const s = new CidrSet(['fd00::/8', '2001:db8::1/128', '::1']);
  assert.ok(s.has('fd12:3456::1'));
  assert.ok(s.has('2001:db8:0:0:0:0:0:1'));
  assert.ok(!s.has('2001:db8::2'));
  assert.ok(s.has('::1'));
  assert.ok(s.has('fd00::1%eth0'));
  assert.ok(!s.has('fe80::1'));
});

test('an IPv4 client seen as IPv4-mapped IPv6 matches its IPv4 range, and vice versa', () => {
  assert.ok(new CidrSet(['10.0.0.0/8']).has('::ffff:10.1.2.3'));
  assert.ok(new CidrSet(['::ffff:10.0.0.0/104']).has('10.1.2.3'));
  assert.equal(ipToBigInt('::ffff:10.1.2.3'), ipToBigInt('10.1.2.3'));
  assert.ok(!new CidrSet(['10.0.0.0/8']).has('::ffff:11.1.2.3'));
});

test('/0 matches everything of its family; garbage matches nothing', () => {
  assert.ok(new CidrSet(['0.0.0.0/0']).has('8.8.8.8'));
  assert.ok(!new CidrSet(['0.0.0.0/0']).has('2001:db8::1'));
  assert.ok(new CidrSet(['::/0']).has('2001:db8::1'));
  const s = new CidrSet(['10.0.0.0/8']);
  for (const bad of ['', 'localhost', '10.0.0', '10.0.0.0.1', '::ffff:10.0.0', undefined]) assert.ok(!s.has(bad), String(bad));
});
