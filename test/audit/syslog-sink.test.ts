import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as netServer, type Server, type Socket } from 'node:net';
import { createServer as tlsServer } from 'node:tls';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createAuditLog } from '../../src/audit/log.js';
import { SyslogAuditSink, formatSyslog } from '../../src/audit/sinks/syslog.js';
import { makePki, type TestPki } from '../tls/certs.js';
import { assertNoSecrets, secretLadenEvent, until } from './helpers.js';

/** A syslog collector: parses RFC 6587 octet-counted frames and keeps the raw bytes. */
class Collector {
  readonly messages: string[] = [];
  raw = Buffer.alloc(0);
  readonly server: Server;
  constructor(tls?: { key: Buffer; cert: Buffer }) {
    const onConn = (sock: Socket): void => {
      let buf = Buffer.alloc(0);
      sock.on('data', (d: Buffer) => {
        this.raw = Buffer.concat([this.raw, d]);
        buf = Buffer.concat([buf, d]);
        for (;;) {
          const sp = buf.indexOf(0x20);
          if (sp < 0) break;
          const len = Number(buf.subarray(0, sp).toString('ascii'));
          assert.ok(Number.isInteger(len) && len > 0, `bad frame length ${buf.subarray(0, sp).toString()}`);
          if (buf.length < sp + 1 + len) break;
          this.messages.push(buf.subarray(sp + 1, sp + 1 + len).toString('utf8'));
          buf = buf.subarray(sp + 1 + len);
        }
      });
      sock.on('error', () => undefined);
    };
    this.server = tls ? tlsServer({ key: tls.key, cert: tls.cert }, onConn) : netServer(onConn);
  }
  listen(port = 0): Promise<number> {
    return new Promise((resolve) => this.server.listen(port, '127.0.0.1', () => resolve((this.server.address() as AddressInfo).port)));
  }
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      (this.server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
    });
  }
}

const RFC5424 = /^<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S+) (\S+) (\d+) (\S+) - \uFEFF(\{.*\})$/s;

test('RFC 5424 message format: PRI, version, timestamp, MSGID = event type, BOM + JSON', () => {
  const m = formatSyslog(
    { type: 'tool.call.denied', outcome: 'denied', time: '2026-01-01T00:00:00.000Z' },
    { facility: 13, appName: 'mcp-bastion', hostname: 'gw 1', procId: '42' },
  );
  assert.equal(m, '<108>1 2026-01-01T00:00:00.000Z gw_1 mcp-bastion 42 tool.call.denied - \uFEFF{"type":"tool.call.denied","outcome":"denied","time":"2026-01-01T00:00:00.000Z"}');
});

test('syslog over TCP: every event arrives framed and parseable; a collector that starts late gets everything', async () => {
  // Reserve a port, free it: the sink starts while nothing listens there.
  const probe = new Collector();
  const port = await probe.listen();
  await probe.close();
  const sink = new SyslogAuditSink({ url: `tcp://127.0.0.1:${port}`, hostname: 'gw1', connectTimeoutMs: 1000 });
  const log = createAuditLog({ sinks: [{ sink, retry: { initialDelayMs: 5, maxDelayMs: 20 }, batchSize: 7 }] });
  for (let i = 0; i < 30; i++) log.emit(secretLadenEvent(i, { outcome: i % 3 === 0 ? 'denied' : 'success', type: i % 3 === 0 ? 'tool.call.denied' : 'tool.call.completed' }));
  await until(() => log.stats().sinks[0]!.consecutiveFailures >= 2, 'sink reports the collector down');
  const c = new Collector();
  await c.listen(port);
  await log.flush();
  await until(() => c.messages.length === 30, 'all 30 messages received');
  const ids: string[] = [];
  for (const msg of c.messages) {
    const m = RFC5424.exec(msg);
    assert.ok(m, `not RFC 5424: ${msg.slice(0, 80)}`);
    const ev = JSON.parse(m[7]!);
    assert.equal(m[6], ev.type);
    assert.equal(m[3], 'gw1');
    assert.equal(Number(m[1]), 13 * 8 + (ev.outcome === 'denied' ? 4 : 6));
    ids.push(ev.requestId);
  }
  assert.deepEqual(ids, Array.from({ length: 30 }, (_, i) => `req-${i}`));
  assertNoSecrets(c.raw.toString('utf8'), 'syslog tcp');
  await log.close();
  await c.close();
});

let pki: TestPki;
test.before(() => {
  pki = makePki();
});
test.after(() => pki?.cleanup());

test('syslog over TLS: verified collector gets every event; an untrusted collector gets nothing', async () => {
  const c = new Collector({ key: readFileSync(pki.serverKey), cert: readFileSync(pki.serverCert) });
  const port = await c.listen();
  const sink = new SyslogAuditSink({ url: `tls://127.0.0.1:${port}`, ca: pki.caCert });
  const log = createAuditLog({ sinks: [sink] });
  for (let i = 0; i < 10; i++) log.emit(secretLadenEvent(i));
  await log.flush();
  await until(() => c.messages.length === 10, 'tls messages');
  assert.ok(c.messages.every((m) => RFC5424.test(m)));
  assertNoSecrets(c.raw.toString('utf8'), 'syslog tls');
  await log.close();

  // Without the CA the collector's certificate is not trusted: nothing is sent in clear or otherwise.
  const before = c.messages.length;
  const untrusting = new SyslogAuditSink({ url: `tls://127.0.0.1:${port}`, connectTimeoutMs: 1000 });
  await assert.rejects(untrusting.write([secretLadenEvent(99)]), /certificate|self.signed|issuer/i);
  assert.equal(c.messages.length, before);
  await untrusting.close();
  await c.close();
});
