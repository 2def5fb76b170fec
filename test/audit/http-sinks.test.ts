import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createHmac } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { createAuditLog } from '../../src/audit/log.js';
import { OtlpAuditSink } from '../../src/audit/sinks/otlp.js';
import { WebhookAuditSink } from '../../src/audit/sinks/webhook.js';
import { assertNoSecrets, secretLadenEvent, until } from './helpers.js';

interface Received {
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

async function receiver(handle: (r: Received, res: ServerResponse) => void): Promise<{ url: string; got: Received[]; close(): Promise<void> }> {
  const got: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = { path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      got.push(r);
      handle(r, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    got,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

const RETRY = { initialDelayMs: 5, maxDelayMs: 40 };

test('webhook: fails N times then accepts; loses nothing, retries with growing delays, bodies are signed', async () => {
  let failuresLeft = 4;
  const secret = 'webhook-shared-secret-0123456789';
  const rx = await receiver((r, res) => {
    if (failuresLeft > 0) {
      failuresLeft--;
      res.writeHead(503).end('down');
      return;
    }
    res.writeHead(200).end('ok');
  });
  const sink = new WebhookAuditSink({ url: `${rx.url}/hook?token=query-secret-123456`, secret, headers: { authorization: 'Bearer receiver-credential-abcdef' } });
  const log = createAuditLog({ sinks: [{ sink, batchSize: 10, retry: RETRY }] });
  for (let i = 0; i < 45; i++) log.emit(secretLadenEvent(i));
  await log.flush();
  const accepted = rx.got.slice(4).map((r) => JSON.parse(r.body) as { events: Array<{ requestId: string; id: string }> });
  const ids = accepted.flatMap((b) => b.events.map((e) => e.requestId));
  assert.deepEqual(ids, Array.from({ length: 45 }, (_, i) => `req-${i}`), 'every event exactly once after the receiver recovered');
  assert.ok(accepted.every((b) => b.events.length <= 10), 'batched');
  // The first failed batch was re-sent identically (same event ids) so a receiver can de-duplicate.
  assert.equal(rx.got[0]!.body, rx.got[4]!.body);
  for (const r of rx.got) {
    assert.equal(r.headers['x-bastion-signature'], `sha256=${createHmac('sha256', secret).update(r.body).digest('hex')}`);
    assert.equal(r.headers.authorization, 'Bearer receiver-credential-abcdef');
  }
  assertNoSecrets(rx.got.map((r) => r.body).join('\n'), 'webhook');
  await log.close();
  await rx.close();
});

test('webhook: an unreachable receiver error names origin and path, never the query (which may carry a credential)', async () => {
  const sink = new WebhookAuditSink({ url: 'http://127.0.0.1:9/hook?token=query-secret-123456', timeoutMs: 1000 });
  await assert.rejects(sink.write([secretLadenEvent(1)]), (err: Error) => {
    assert.match(err.message, /127\.0\.0\.1:9\/hook/);
    assert.ok(!err.message.includes('query-secret'));
    return true;
  });
  const otlp = new OtlpAuditSink({ endpoint: 'http://user:otlp-pass-123456@127.0.0.1:9/', timeoutMs: 1000 });
  await assert.rejects(otlp.write([secretLadenEvent(1)]), (err: Error) => {
    assert.match(err.message, /127\.0\.0\.1:9\/v1\/logs/);
    assert.ok(!err.message.includes('otlp-pass'));
    return true;
  });
});

test('OTLP/HTTP: logs with attributes, and one trace per request with a child span per stage', async () => {
  let failFirst = true;
  const rx = await receiver((r, res) => {
    if (failFirst) {
      failFirst = false;
      res.writeHead(503).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  const sink = new OtlpAuditSink({ endpoint: `${rx.url}/`, headers: { 'x-api-key': 'otlp-api-key-abcdef' }, serviceName: 'gw-test' });
  const log = createAuditLog({ sinks: [{ sink, retry: RETRY }], now: () => Date.UTC(2026, 0, 1, 12) });
  for (let i = 0; i < 5; i++) log.emit(secretLadenEvent(i));
  log.emit({ type: 'auth.failed', outcome: 'failure', reason: 'invalid_token', requestId: 'req-x', clientIp: '10.0.0.1' });
  await log.flush();
  const logs = rx.got.filter((r) => r.path === '/v1/logs');
  const traces = rx.got.filter((r) => r.path === '/v1/traces');
  assert.equal(logs.length, 2, 'first export failed (503) and was retried');
  assert.equal(traces.length, 1);
  assert.equal(logs[1]!.headers['content-type'], 'application/json');
  assert.equal(logs[1]!.headers['x-api-key'], 'otlp-api-key-abcdef');

  const L = JSON.parse(logs[1]!.body);
  const rl = L.resourceLogs[0];
  assert.deepEqual(rl.resource.attributes[0], { key: 'service.name', value: { stringValue: 'gw-test' } });
  const records = rl.scopeLogs[0].logRecords;
  assert.equal(records.length, 6);
  const attr = (rec: { attributes: Array<{ key: string; value: Record<string, unknown> }> }, k: string): unknown =>
    Object.values(rec.attributes.find((a) => a.key === k)?.value ?? {})[0];
  assert.equal(attr(records[0], 'event.name'), 'tool.call.completed');
  assert.equal(attr(records[0], 'mcp.tool.name'), 'read_file');
  assert.equal(attr(records[5], 'event.outcome'), 'failure');
  assert.equal(records[5].severityText, 'WARN');
  assert.equal(records[0].timeUnixNano, String(BigInt(Date.UTC(2026, 0, 1, 12)) * 1_000_000n));
  assert.match(records[0].traceId, /^[0-9a-f]{32}$/);

  const T = JSON.parse(traces[0]!.body);
  const spans = T.resourceSpans[0].scopeSpans[0].spans as Array<Record<string, string | number>>;
  // 5 requests x (1 root + 4 stages)
  assert.equal(spans.length, 25);
  const roots = spans.filter((s) => s.parentSpanId === undefined);
  assert.equal(roots.length, 5);
  const root = roots[0]!;
  assert.equal(root.traceId, records[0].traceId, 'log record and trace correlate');
  assert.equal(root.kind, 2);
  const children = spans.filter((s) => s.parentSpanId === root.spanId);
  assert.deepEqual(children.map((s) => s.name), ['transport.origin', 'identity.bearer-token', 'authorization.policy', 'upstream']);
  assert.equal(BigInt(root.endTimeUnixNano!) - BigInt(root.startTimeUnixNano!), 4_500_000n, 'root span = total');
  assert.equal(BigInt(children[1]!.endTimeUnixNano!) - BigInt(children[1]!.startTimeUnixNano!), 500_000n);
  assert.equal(children[0]!.startTimeUnixNano, root.startTimeUnixNano);
  assert.equal(children[1]!.startTimeUnixNano, children[0]!.endTimeUnixNano, 'stages laid end to end');
  assertNoSecrets(rx.got.map((r) => r.body).join('\n'), 'otlp');
  await log.close();
  await rx.close();
});

test('OTLP traces join the client trace when the event carries a W3C trace context', async () => {
  const { toOtlpTraces } = await import('../../src/audit/sinks/otlp.js');
  const t = toOtlpTraces([{ type: 'tool.call.completed', outcome: 'success', time: '2026-01-01T00:00:00.000Z', requestId: 'r', traceId: '4bf92f3577b34da6a3ce929d0e0e4736', parentSpanId: '00f067aa0ba902b7', durations: { a: 1, total: 1 } }], 'svc')!;
  const spans = (t.resourceSpans[0] as { scopeSpans: Array<{ spans: Array<Record<string, unknown>> }> }).scopeSpans[0]!.spans;
  assert.equal(spans[0]!.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
  assert.equal(spans[0]!.parentSpanId, '00f067aa0ba902b7');
  assert.equal(spans[1]!.parentSpanId, spans[0]!.spanId);
});

test('OTLP: a 400 is permanent (dropped and counted), later batches still flow', async () => {
  let n = 0;
  const rx = await receiver((_r, res) => {
    n++;
    res.writeHead(n === 1 ? 400 : 200).end('{}');
  });
  const sink = new OtlpAuditSink({ endpoint: rx.url, traces: false });
  const log = createAuditLog({ sinks: [{ sink, batchSize: 1, retry: RETRY }] });
  log.emit(secretLadenEvent(1));
  log.emit(secretLadenEvent(2));
  await log.flush();
  await until(() => rx.got.length === 2, 'two posts');
  assert.equal(log.stats().sinks[0]!.dropped, 1);
  assert.equal(log.stats().sinks[0]!.written, 1);
  await log.close();
  await rx.close();
});

test('webhook URL userinfo is sent as Basic authorization, never in the URL', async () => {
  const rx = await receiver((_r, res) => res.writeHead(200).end());
  const u = new URL(rx.url);
  const sink = new WebhookAuditSink({ url: `http://hook:hook-pass-123456@${u.host}/in` });
  await sink.write([secretLadenEvent(1)]);
  assert.equal(rx.got[0]!.path, '/in');
  assert.equal(rx.got[0]!.headers.authorization, `Basic ${Buffer.from('hook:hook-pass-123456').toString('base64')}`);
  await rx.close();
});
