/**
 * Shared by every audit test: secrets fed into events, and the check that none of them reaches
 * any sink's output. Every sink test calls assertNoSecrets on everything its sink wrote.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import type { AuditEvent, AuditSink } from '../../src/audit/types.js';

const pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

export const SECRETS = {
  jwt: 'eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImF1ZCI6Im1jcCJ9.c2lnbmF0dXJlLWJ5dGVzLWhlcmUtMTIzNDU2Nzg5MA',
  opaque: 'opaq_9f8e7d6c5b4a39281716151413121110',
  aws: 'AKIAIOSFODNN7EXAMPLE',
  github: 'ghp_abcdefghijklmnopqrstuvwxyz0123456789',
  password: 'hunter2-correct-horse-battery',
  clientSecret: 'cs_live_5b2f0c9e1d7a4e3f',
  urlPassword: 'pa55w0rd-in-url',
  apiKeyParam: 'k3y-in-query-string-77',
  openai: 'sk-proj-abcdefghijklmnopqrstuvwxyz012345',
  pemBody: pem.split('\n')[1]!,
};

/** A tool call event with secrets hidden in every place a careless caller might put one. */
export function secretLadenEvent(i = 0, extra: Partial<AuditEvent> = {}): AuditEvent {
  return {
    type: 'tool.call.completed',
    outcome: 'success',
    requestId: `req-${i}`,
    sessionId: 'sess-1',
    mount: 'files',
    clientIp: '127.0.0.1',
    principal: { subject: 'alice', issuer: 'https://as.example', authMethod: 'bearer', tokenId: 'jti-1' },
    method: 'tools/call',
    tool: 'read_file',
    args: {
      path: `/tmp/file-${i}.txt`,
      password: SECRETS.password,
      client_secret: SECRETS.clientSecret,
      note: `curl -H "Authorization: Bearer ${SECRETS.opaque}" https://api.example/x?api_key=${SECRETS.apiKeyParam}`,
      jwt: SECRETS.jwt,
      nested: { deeper: [`aws ${SECRETS.aws}`, `gh ${SECRETS.github}`, `openai ${SECRETS.openai}`] },
      url: `https://bob:${SECRETS.urlPassword}@db.example/x`,
      key: pem,
      big: 'x'.repeat(5000),
    },
    headers: { authorization: `Bearer ${SECRETS.opaque}`, 'x-request-id': `r${i}` },
    reason: `upstream said ${SECRETS.jwt}`,
    durations: { 'transport.origin': 0.1, 'identity.bearer-token': 0.5, 'authorization.policy': 0.2, upstream: 3.2, total: 4.5 },
    status: 'ok',
    ...extra,
  };
}

export function assertNoSecrets(output: string, where: string): void {
  assert.ok(output.length > 0, `${where}: no output to check`);
  for (const [name, value] of Object.entries(SECRETS)) {
    assert.ok(!output.includes(value), `${where}: secret "${name}" appears in the sink output`);
  }
}

/** In-memory sink that can be made to fail. */
export class MemorySink implements AuditSink {
  readonly events: AuditEvent[] = [];
  failing = false;
  writes = 0;
  failures = 0;
  closed = false;
  constructor(readonly name = 'memory') {}
  async write(events: readonly AuditEvent[]): Promise<void> {
    this.writes++;
    if (this.failing) {
      this.failures++;
      throw new Error(`${this.name} is down`);
    }
    this.events.push(...events);
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

/** Wait (yielding to the event loop) until `cond()` holds; fails after `ms` of real time. */
export async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

export interface LogLine {
  level: 'error' | 'warn' | 'info';
  obj: object;
  msg: string;
}

export function captureLogger(): { lines: LogLine[]; logger: { error(o: object, m: string): void; warn(o: object, m: string): void; info(o: object, m: string): void } } {
  const lines: LogLine[] = [];
  return {
    lines,
    logger: {
      error: (obj, msg) => lines.push({ level: 'error', obj, msg }),
      warn: (obj, msg) => lines.push({ level: 'warn', obj, msg }),
      info: (obj, msg) => lines.push({ level: 'info', obj, msg }),
    },
  };
}
