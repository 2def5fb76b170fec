import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMetrics, metricsHandler } from '../../src/metrics/metrics.js';
import { createAuditLog } from '../../src/audit/log.js';
import { MemorySink, until } from '../audit/helpers.js';

test('the registry exposes requests, denials, latencies per stage and end to end, upstream health, sanitizer/scanner hits, audit and anomalies', async () => {
  const m = createMetrics({ defaultMetrics: false });
  m.observeRequest({ mount: 'files', method: 'tools/call', tool: 'read_file', outcome: 'allowed', durationMs: 12, stages: { 'identity.bearer-token': 0.4, 'authorization.policy': 0.1 } });
  m.observeRequest({ mount: 'files', method: 'tools/call', tool: 'delete_file', outcome: 'denied', reason: 'insufficient_scope', durationMs: 1 });
  m.observeRequest({ mount: 'files', method: 'tools/call', tool: 'delete_file', outcome: 'denied', reason: 'insufficient_scope', durationMs: 1 });
  m.setUpstreamHealth('files', true);
  m.setUpstreamHealth('db', false);
  m.sanitizerHit('files', 'invisible_chars', 'stripped');
  m.scannerHit('files', 'hidden_instructions');
  m.anomalyDetected('call_rate', 'throttle');
  const dead = new MemorySink('dead');
  dead.failing = true;
  const log = createAuditLog({ sinks: [{ sink: dead, retry: { initialDelayMs: 2, maxDelayMs: 5 } }], queue: { maxEvents: 3, onFull: 'drop' }, metrics: m });
  for (let i = 0; i < 10; i++) log.emit({ type: 'auth.succeeded', outcome: 'success' });
  await until(() => log.stats().sinks[0]!.consecutiveFailures >= 1, 'sink failed');
  const r = await metricsHandler(m)();
  assert.match(r.contentType, /^text\/plain; version=0\.0\.4/);
  const b = r.body;
  assert.match(b, /bastion_requests_total\{mount="files",method="tools\/call",tool="read_file",outcome="allowed"\} 1/);
  assert.match(b, /bastion_denials_total\{mount="files",tool="delete_file",reason="insufficient_scope"\} 2/);
  assert.match(b, /bastion_request_duration_seconds_count\{mount="files",method="tools\/call"\} 3/);
  assert.match(b, /bastion_stage_duration_seconds_count\{stage="identity.bearer-token"\} 1/);
  assert.match(b, /bastion_upstream_up\{mount="db"\} 0/);
  assert.match(b, /bastion_sanitizer_hits_total\{mount="files",rule="invisible_chars",action="stripped"\} 1/);
  assert.match(b, /bastion_scanner_hits_total\{mount="files",rule="hidden_instructions"\} 1/);
  assert.match(b, /bastion_anomalies_total\{kind="call_rate",action="throttle"\} 1/);
  assert.match(b, /bastion_audit_queue_depth 3/);
  assert.match(b, /bastion_audit_events_dropped_total\{sink="dead"\} [1-9]/);
  assert.match(b, /bastion_audit_sink_failures_total\{sink="dead"\} [1-9]/);
  await log.close(10);
});

test('label values from upstreams are bounded: a flood of made-up tool names collapses into _other', async () => {
  const m = createMetrics({ defaultMetrics: false, maxLabelValues: 10 });
  for (let i = 0; i < 1000; i++) m.observeRequest({ mount: 'x', method: 'tools/call', tool: `tool-${i}-${'z'.repeat(300)}`, outcome: 'allowed', durationMs: 1 });
  const body = await m.registry.metrics();
  const series = body.split('\n').filter((l) => l.startsWith('bastion_requests_total{'));
  assert.equal(series.length, 11);
  assert.ok(series.some((l) => l.includes('tool="_other"') && l.endsWith(' 990')));
  assert.ok(series.every((l) => l.length < 300), 'long values are cut');
});

test('metricsRoute serves the registry at its path over real HTTP, 405 for other methods, ignores other paths', async () => {
  const { createServer } = await import('node:http');
  const { metricsRoute } = await import('../../src/metrics/route.js');
  const m = createMetrics({ defaultMetrics: false });
  m.observeRequest({ mount: 'a', method: 'tools/list', outcome: 'allowed', durationMs: 2 });
  const route = metricsRoute(m, { path: '/metrics' });
  const server = createServer((req, res) => {
    void route(req, res, (req.url ?? '/').split('?')[0]!).then((handled) => {
      if (!handled) res.writeHead(404).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  try {
    const ok = await fetch(`${base}/metrics`);
    assert.equal(ok.status, 200);
    assert.match(ok.headers.get('content-type')!, /^text\/plain/);
    assert.match(await ok.text(), /bastion_requests_total\{mount="a",method="tools\/list",tool="",outcome="allowed"\} 1/);
    assert.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405);
    assert.equal((await fetch(`${base}/other`)).status, 404);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

test('metrics.token: no or a wrong bearer token gets 401 and an audit record; the right one the metrics; a missing secret stops the gateway', async () => {
  const { gateway } = await import('../helpers/gateway.js');
  const { RecordingAudit } = await import('../stages/authorization/helpers.js');
  process.env.BASTION_TEST_METRICS_TOKEN = 'scrape-token-0123456789';
  const audit = new RecordingAudit();
  const gw = await gateway({ servers: {}, metrics: { token: { env: 'BASTION_TEST_METRICS_TOKEN' } } } as never, { audit });
  try {
    const url = `${gw.url}/metrics`;
    const none = await fetch(url);
    assert.equal(none.status, 401);
    assert.match(none.headers.get('www-authenticate')!, /^Bearer realm="metrics"$/);
    assert.doesNotMatch(await none.text(), /bastion_/);
    const wrong = await fetch(url, { headers: { authorization: 'Bearer scrape-token-0123456780' } });
    assert.equal(wrong.status, 401);
    assert.match(wrong.headers.get('www-authenticate')!, /error="invalid_token"/);
    const prefix = await fetch(url, { headers: { authorization: 'Bearer scrape-token-012345678' } });
    assert.equal(prefix.status, 401);
    const ok = await fetch(url, { headers: { authorization: 'Bearer scrape-token-0123456789' } });
    assert.equal(ok.status, 200);
    assert.match(await ok.text(), /nodejs_heap_size_used_bytes/);
    const refused = audit.events.filter((e) => e.type === 'request.rejected' && typeof e.reason === 'string' && e.reason.startsWith('metrics_'));
    assert.deepEqual(refused.map((e) => e.reason), ['metrics_missing_token', 'metrics_invalid_token', 'metrics_invalid_token']);
    assert.ok(!JSON.stringify(audit.events).includes('scrape-token'), 'the token is never in an audit record');
  } finally {
    await gw.close();
  }
  delete process.env.BASTION_TEST_METRICS_TOKEN;
  await assert.rejects(
    gateway({ servers: {}, metrics: { token: { env: 'BASTION_TEST_METRICS_TOKEN' } } } as never),
    (err: Error) => /metrics\.token: environment variable BASTION_TEST_METRICS_TOKEN is not set/.test(err.message),
  );
});

test('metrics.token from a file is rotated without a restart: the new token is in force within about a second, the old one refused; a vanished file refuses every scrape', async () => {
  const { gateway } = await import('../helpers/gateway.js');
  const { checkTokenFileRotation, tokenFile } = await import('../helpers/token-file.js');
  const t = tokenFile('old-scrape-token-0123456789');
  const gw = await gateway({ servers: {}, metrics: { token: { file: t.file } } } as never);
  try {
    await checkTokenFileRotation(t, async (token) => (await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${token}` } })).status, {
      initial: 'old-scrape-token-0123456789',
      next: 'new-scrape-token-9876543210',
      third: 'third-scrape-token-000000',
    });
  } finally {
    await gw.close();
    t.remove();
  }
});
