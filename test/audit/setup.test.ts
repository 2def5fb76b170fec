import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { generateKeyPairSync, createPublicKey } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { configSchema } from '../../src/config/schema.js';
import { createAuditFromConfig, stageDurationsFor } from '../../src/audit/setup.js';
import { toolCallEvent, requestAuditBase } from '../../src/audit/request.js';
import { verifyAuditFile } from '../../src/audit/verify.js';
import type { RequestContext } from '../../src/pipeline/context.js';
import { ANONYMOUS } from '../../src/identity/types.js';
import { SECRETS, assertNoSecrets } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'bastion-audit-setup-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function ctx(i: number, tool: string, args: unknown): RequestContext {
  return {
    requestId: `req-${i}`,
    startedAt: 0,
    mount: { name: 'files', config: {} as never, resource: 'http://gw/mcp/files' },
    http: { method: 'POST', path: '/mcp/files', query: '', headers: { authorization: `Bearer ${SECRETS.jwt}`, traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' }, remoteAddress: '10.1.2.3', secure: false, peerCertificate: undefined } as never,
    session: { id: 'sess-9' } as never,
    message: { jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: tool, arguments: args } } as never,
    principal: { ...ANONYMOUS, subject: 'alice', issuer: 'https://as', authMethod: 'bearer', tokenHash: 'th', tokenId: 'jti-1' },
    decisions: [],
    timings: { 'identity.bearer-token': 0.25, 'authorization.policy': 0.05 },
    locals: {},
  };
}

test('from config: relative file path, signing key, stdout; 10,000 mixed events give exactly 10,000 chained records and verify passes', async () => {
  const { privateKey } = generateKeyPairSync('ed25519');
  writeFileSync(join(dir, 'k.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const cfg = configSchema.parse({
    servers: {},
    audit: { sinks: [{ type: 'file', path: 'audit.jsonl', checkpoint: { keyFile: 'k.pem', everyRecords: 500 } }, { type: 'stdout' }], queue: { maxEvents: 20_000 }, stageDurations: true },
  });
  const out = new PassThrough();
  let stdout = '';
  out.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
  const log = await createAuditFromConfig(cfg.audit, { baseDir: dir, stdout: out });
  const N = 10_000;
  for (let i = 0; i < N; i++) {
    const c = ctx(i, i % 3 === 0 ? 'delete_file' : 'read_file', { path: `/srv/${i}`, token: SECRETS.opaque });
    if (i % 5 === 0) log.emit({ type: 'auth.failed', outcome: 'failure', reason: 'invalid_token', ...requestAuditBase({ ...c, principal: undefined }) });
    else if (i % 3 === 0) log.emit(toolCallEvent(c, { kind: 'denied', outcome: 'denied', reason: 'insufficient_scope', stage: 'authorization.policy', policy: 'scopes', error: 'ERR_BASTION_AUTH_INSUFFICIENT_SCOPE' }));
    else log.emit(toolCallEvent(c, { kind: 'completed', outcome: i % 7 === 0 ? 'failure' : 'success', status: i % 7 === 0 ? 'tool_error' : 'ok' }));
  }
  await log.close();
  const file = join(dir, 'audit.jsonl');
  const r = await verifyAuditFile(file, createPublicKey(privateKey));
  assert.equal(r.ok, true, r.problem?.message);
  assert.equal(r.events, N);
  const perRequest = new Map<string, number>();
  for (const line of readFileSync(file, 'utf8').trimEnd().split('\n')) {
    const rec = JSON.parse(line);
    if (!rec.event) continue;
    assert.match(rec.event.type, /^(tool\.call\.(completed|denied)|auth\.failed)$/);
    perRequest.set(rec.event.requestId, (perRequest.get(rec.event.requestId) ?? 0) + 1);
  }
  assert.equal(perRequest.size, N);
  assert.ok([...perRequest.values()].every((n) => n === 1), 'exactly one event per request');
  const sample = JSON.parse(readFileSync(file, 'utf8').split('\n')[1]!).event;
  assert.equal(sample.type, 'tool.call.completed');
  assert.deepEqual(sample.principal, { subject: 'alice', issuer: 'https://as', authMethod: 'bearer', tokenId: 'jti-1' });
  assert.equal(sample.clientIp, '10.1.2.3');
  assert.equal(sample.tool, 'read_file');
  assert.equal(sample.args.token, '[redacted]');
  assert.equal(sample.durations['identity.bearer-token'], 0.25);
  assert.equal(typeof sample.durations.total, 'number');
  assert.equal(sample.traceId, '4bf92f3577b34da6a3ce929d0e0e4736', 'trace context from traceparent');
  assert.equal(sample.parentSpanId, '00f067aa0ba902b7');
  assert.equal(stdout.trimEnd().split('\n').length, N);
  assertNoSecrets(readFileSync(file, 'utf8'), 'file from config');
  assertNoSecrets(stdout, 'stdout from config');
});

test('a bad checkpoint key fails start-up with a message that says how to fix it', async () => {
  writeFileSync(join(dir, 'rsa.pem'), generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const cfg = configSchema.parse({ servers: {}, audit: { sinks: [{ type: 'file', path: 'x.jsonl', checkpoint: { keyFile: 'rsa.pem' } }] } });
  await assert.rejects(createAuditFromConfig(cfg.audit, { baseDir: dir }), /must be Ed25519/);
  const missing = configSchema.parse({ servers: {}, audit: { sinks: [{ type: 'file', path: 'x.jsonl', checkpoint: { keyFile: 'nope.pem' } }] } });
  await assert.rejects(createAuditFromConfig(missing.audit, { baseDir: dir }), /bastion audit keygen/);
  assert.throws(() => configSchema.parse({ servers: {}, audit: { sinks: [{ type: 'syslog', url: 'udp://h:514' }] } }), /tcp:\/\/HOST:PORT/);
});

test('audit.stageDurations: off by default (durations keeps its total), on when set, on by default with an otlp sink', async () => {
  const durations = async (audit: Record<string, unknown>): Promise<Record<string, unknown>> => {
    const cfg = configSchema.parse({ servers: {}, audit });
    const out = new PassThrough();
    let text = '';
    out.on('data', (c: Buffer) => (text += c.toString()));
    const log = await createAuditFromConfig(cfg.audit, { stdout: out });
    log.emit(toolCallEvent(ctx(1, 'read_file', {}), { kind: 'completed', outcome: 'success', status: 'ok' }));
    await log.close();
    return JSON.parse(text.trim().split('\n')[0]!).durations as Record<string, unknown>;
  };
  const off = await durations({ sinks: [{ type: 'stdout' }] });
  assert.deepEqual(Object.keys(off), ['total'], 'default: the total only');
  assert.equal(typeof off.total, 'number');
  const on = await durations({ sinks: [{ type: 'stdout' }], stageDurations: true });
  assert.equal(on['identity.bearer-token'], 0.25);
  assert.equal(on['authorization.policy'], 0.05);
  assert.equal(typeof on.total, 'number');
  const parse = (audit: Record<string, unknown>) => configSchema.parse({ servers: {}, audit }).audit;
  assert.equal(stageDurationsFor(parse({ sinks: [{ type: 'stdout' }, { type: 'otlp', endpoint: 'http://127.0.0.1:4318' }] })), true, 'an otlp sink turns them on');
  assert.equal(stageDurationsFor(parse({ sinks: [{ type: 'otlp', endpoint: 'http://127.0.0.1:4318' }], stageDurations: false })), false, 'unless set off');
  assert.equal(stageDurationsFor(parse({ sinks: [{ type: 'stdout' }] })), false);
});
