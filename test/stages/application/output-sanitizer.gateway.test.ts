/**
 * The output sanitizer through the running gateway: a hostile stdio upstream, the official SDK
 * client, every message kind a model reads, a per-server block policy, and the audit stream.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { CreateMessageRequestSchema, LoggingMessageNotificationSchema, type CreateMessageRequest } from '@modelcontextprotocol/sdk/types.js';
import type { Gateway } from '../../../src/server.js';
import type { AuditEvent, AuditLog } from '../../../src/audit/types.js';
import { outputSanitizerStage } from '../../../src/stages/application/output-sanitizer.js';
import { connectClient, gateway, ROOT } from '../../helpers/gateway.js';
import { FAKE } from '../../sanitizer/fakes.js';

const upstream = { command: process.execPath, args: ['--import', 'tsx', resolve(ROOT, 'test/sanitizer/fixtures/hostile-upstream.ts')], cwd: ROOT };
const SECRETS = [FAKE.awsAccessKey, FAKE.githubToken, FAKE.stripeKey, FAKE.genericKey];

function noSecret(v: unknown): void {
  const s = JSON.stringify(v);
  for (const x of SECRETS) assert.ok(!s.includes(x), 'a secret reached the client');
}

describe('output sanitizer through the gateway', { timeout: 120_000 }, () => {
  let gw: Gateway;
  const events: AuditEvent[] = [];
  const audit: AuditLog = { emit: (e) => void events.push(e), flush: async () => {}, close: async () => {} };

  // One session (one upstream child) for the hostile mount, shared by the tests below: starting a
  // child per test would cost seconds each.
  let client: Client;
  const logs: unknown[] = [];
  let onLog: (() => void) | undefined;
  let seen: CreateMessageRequest['params'] | undefined;

  before(async () => {
    gw = await gateway(
      { servers: { hostile: { stdio: upstream }, strict: { stdio: upstream, sanitize: { injection: 'block', tools: { clean: {} } } } } },
      { bare: true, audit, stages: (env) => [outputSanitizerStage({ audit: env.audit, sanitize: env.config.sanitize })] },
    );
    ({ client } = await connectClient(`${gw.url}/mcp/hostile`, { capabilities: { sampling: {} } }));
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
      logs.push(n.params);
      onLog?.();
    });
    client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
      seen = req.params;
      return { role: 'assistant', model: 'test', content: { type: 'text', text: 'ok' } };
    });
    await client.listTools(); // the SDK client checks structuredContent against schemas it listed
  });
  after(async () => {
    await client?.close();
    await gw?.close();
  });

  test('tool result: text, embedded resource, resource link; ANSI gone, injection annotated, secrets redacted', async () => {
    const r = (await client.callTool({ name: 'page', arguments: {} })) as { content: Array<Record<string, any>> };
    noSecret(r);
    assert.ok(!JSON.stringify(r).includes('\\u001b'));
    assert.match(r.content[0]!.text, /⟦bastion:untrusted rules=injection\.ignore-previous.*⟧Ignore all previous instructions/);
    assert.match(r.content[0]!.text, /AWS_ACCESS_KEY_ID=\[REDACTED:aws-access-key\]/);
    assert.equal(r.content[1]!.resource.text, 'GITHUB_TOKEN=[REDACTED:github-token]');
    assert.match(r.content[2]!.description, /^⟦bastion:untrusted/);
    const e = events.find((x) => x.type === 'output.sanitized' && x.tool === 'page');
    assert.ok(e, 'audited');
    assert.equal(e.mount, 'hostile');
    noSecret(events);
    const clean = await client.callTool({ name: 'clean', arguments: {} });
    assert.deepEqual(clean.content, [{ type: 'text', text: 'All good: 3 notes.' }]);
  });

  test('structuredContent: redacted when valid, withheld when it breaks the outputSchema', async () => {
    const ok = await client.callTool({ name: 'weather', arguments: {} });
    assert.deepEqual(ok.structuredContent, { temp: 21, note: 'key [REDACTED:github-token]' });
    await assert.rejects(client.callTool({ name: 'weather', arguments: { bad: true } }), /withheld by the gateway's output sanitizer: structuredContent does not conform/);
  });

  test('resources/read contents and a JSON-RPC error message', async () => {
    const r = await client.readResource({ uri: 'doc://env' });
    assert.equal((r.contents[0] as { text: string }).text, 'STRIPE=[REDACTED:stripe-key]');
    await assert.rejects(client.readResource({ uri: 'doc://missing' }), (err: Error) => {
      assert.match(err.message, /⟦bastion:untrusted rules=injection\.ignore-previous/);
      return true;
    });
  });

  test('prompts/get description and messages', async () => {
    const p = await client.getPrompt({ name: 'review' });
    noSecret(p);
    assert.equal(p.description, 'Review (token [REDACTED:github-token])');
    assert.match((p.messages[0]!.content as { text: string }).text, /⟦bastion:untrusted/);
  });

  test('notifications/message (logs) reach the client redacted', async () => {
    const before = logs.length;
    const arrived = new Promise<void>((res) => (onLog = res));
    await client.callTool({ name: 'log', arguments: {} });
    // A notification may travel on the session's GET stream and arrive after the result.
    await Promise.race([arrived, new Promise((_, rej) => setTimeout(() => rej(new Error('no log notification arrived')), 20_000).unref())]);
    assert.equal(logs.length, before + 1);
    assert.deepEqual((logs[before] as { data: unknown }).data, { line: 'connecting with [REDACTED:github-token]' });
  });

  test('server → client sampling/createMessage arrives sanitized', async () => {
    const r = await client.callTool({ name: 'ask', arguments: {} });
    assert.deepEqual(r.content, [{ type: 'text', text: 'model said: ok' }]);
    assert.ok(seen);
    noSecret(seen);
    assert.equal(seen.systemPrompt, 'Summarize. api_key=[REDACTED:generic-secret]');
    assert.match((seen.messages[0]!.content as { text: string }).text, /^⟦bastion:untrusted/);
  });

  test('per-server policy block: the client gets a JSON-RPC error saying the result was withheld and why', async () => {
    const { client: strict } = await connectClient(`${gw.url}/mcp/strict`);
    try {
      await assert.rejects(strict.callTool({ name: 'page', arguments: {} }), (err: Error & { code?: number }) => {
        assert.equal(err.code, -32603);
        assert.match(err.message, /The result of tool 'page' was withheld by the gateway's output sanitizer: it contains text that looks like instructions to the model \(prompt injection\)/);
        assert.match(err.message, /injection\.ignore-previous/);
        return true;
      });
      const blocked = events.find((x) => x.type === 'output.sanitized' && x.mount === 'strict' && x.outcome === 'denied');
      assert.ok(blocked);
      assert.equal(blocked.action, 'blocked');
      const clean = await strict.callTool({ name: 'clean', arguments: {} });
      assert.deepEqual(clean.content, [{ type: 'text', text: 'All good: 3 notes.' }]);
    } finally {
      await strict.close();
    }
  });
});
