import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toWire, type BastionError } from '../../../src/errors.js';
import { compilePolicy } from '../../../src/policy/compile.js';
import { ArgumentValidator } from '../../../src/policy/arguments.js';
import { argumentValidationStage, ARGUMENT_VALIDATION_STAGE } from '../../../src/stages/application/argument-validation.js';
import type { ToolDefinition } from '../../../src/pipeline/context.js';
import { config, principal } from '../../policy/helpers.js';
import { call, fakeSession, RecordingAudit, requestCtx, tool } from '../authorization/helpers.js';

const readNote = tool('read_note', {
  type: 'object',
  properties: { path: { type: 'string' }, limit: { type: 'integer' }, query: { type: 'string' } },
  required: ['path'],
});

function setup(server: Record<string, unknown>, tools: ToolDefinition[] = [readNote]) {
  const cfg = config({ notes: { defaultTool: 'allow', ...server } });
  const audit = new RecordingAudit();
  const validator = new ArgumentValidator();
  const stage = argumentValidationStage({ policy: compilePolicy(cfg), audit, validator });
  const session = fakeSession(tools);
  const run = async (name: string, args?: Record<string, unknown>): Promise<BastionError | undefined> => {
    const ctx = requestCtx({ config: cfg, message: call(name, args), principal: principal(), session });
    try {
      await stage.onRequest!(ctx);
      assert.deepEqual(ctx.decisions, [{ stage: ARGUMENT_VALIDATION_STAGE, outcome: 'allow' }]);
      return undefined;
    } catch (err) {
      return err as BastionError;
    }
  };
  return { cfg, audit, stage, run, validator, session };
}

test('valid calls pass; invalid ones get -32602 naming the argument and the rule', async () => {
  const s = setup({
    tools: { read_note: { args: { path: { pattern: '^/srv/notes/' }, limit: { maximum: 100 }, query: { maxLength: 500 } } } },
  });
  assert.equal(await s.run('read_note', { path: '/srv/notes/a', limit: 100 }), undefined);
  const cases: [Record<string, unknown>, string, string][] = [
    [{ path: '/srv/notes/a', extra: true }, 'extra', 'unknownArguments'],
    [{ path: 7 }, 'path', 'type'],
    [{ path: '/srv/notes/a', limit: 101 }, 'limit', 'maximum'],
    [{ path: '/etc/passwd' }, 'path', 'pattern'],
    [{ path: '/srv/notes/a', query: 'q'.repeat(501) }, 'query', 'maxLength'],
    [{}, 'path', 'required'],
  ];
  for (const [args, argument, rule] of cases) {
    const err = await s.run('read_note', args);
    assert.equal(err?.code, 'ERR_BASTION_POLICY_INVALID_ARGUMENTS', JSON.stringify(args));
    const w = toWire(err, 9);
    assert.equal(w.status, 200);
    assert.equal(w.body.error.code, -32602);
    assert.deepEqual(w.body.error.data, { argument, rule });
    assert.ok(w.body.error.message.includes(argument), w.body.error.message);
    const ev = s.audit.last()!;
    assert.equal(ev.type, 'tool.call.denied');
    assert.equal(ev.stage, ARGUMENT_VALIDATION_STAGE);
    assert.equal(ev.argument, argument);
    assert.equal(ev.rule, rule);
    assert.equal(ev.reason, 'invalid_arguments');
  }
  assert.equal(s.audit.events.find((e) => e.rule === 'pattern')!.policy, 'servers.notes.tools.read_note.args');
});

test('unknownArguments can be relaxed per mount or per tool', async () => {
  const s = setup({ limits: { unknownArguments: 'allow' }, tools: { strict_tool: { unknownArguments: 'refuse' } } }, [
    readNote,
    tool('strict_tool', { type: 'object', properties: { a: {} } }),
  ]);
  assert.equal(await s.run('read_note', { path: '/a', extra: 1 }), undefined);
  assert.equal((await s.run('strict_tool', { a: 1, extra: 1 }))?.code, 'ERR_BASTION_POLICY_INVALID_ARGUMENTS');
});

test('argument size and depth limits from the mount config', async () => {
  const s = setup({ limits: { maxArgumentBytes: 100, maxArgumentDepth: 3 } }, [tool('t', { type: 'object', properties: { a: {} } })]);
  assert.deepEqual((await s.run('t', { a: 'x'.repeat(200) }))?.data, { argument: '(arguments)', rule: 'maxArgumentBytes' });
  assert.deepEqual((await s.run('t', { a: [[['x']]] }))?.data, { argument: '(arguments)', rule: 'maxArgumentDepth' });
  assert.equal(await s.run('t', { a: [['x']] }), undefined);
});

test('a hostile upstream schema makes calls fail closed, without hanging', { timeout: 30_000 }, async () => {
  const $defs: Record<string, unknown> = { a0: { type: 'string' } };
  for (let i = 1; i <= 50; i++) $defs[`a${i}`] = { anyOf: [{ $ref: `#/$defs/a${i - 1}` }, { $ref: `#/$defs/a${i - 1}` }] };
  const s = setup({}, [
    tool('bomb', { type: 'object', properties: { x: { $ref: '#/$defs/a50' } }, $defs }),
    tool('redos', { type: 'object', properties: { s: { type: 'string', pattern: '^(a|a)*$' } } }),
  ]);
  const err = await s.run('bomb', { x: 'a' });
  assert.equal(err?.code, 'ERR_BASTION_UPSTREAM_PROTOCOL');
  assert.match(err!.message, /bomb.*limits\.maxSchemaCost/);
  assert.equal(s.audit.last()!.reason, 'schema_unusable');
  // Exponential-backtracking regex on a long input: answered (refused) promptly by RE2.
  const r = await s.run('redos', { s: `${'a'.repeat(20_000)}b` });
  assert.equal(r?.code, 'ERR_BASTION_POLICY_INVALID_ARGUMENTS');
  assert.deepEqual(r?.data, { argument: 's', rule: 'pattern' });
});

test('a tool missing from the catalog is answered as not found; no session fails closed', async () => {
  const s = setup({});
  assert.equal((await s.run('nope', {}))?.code, 'ERR_BASTION_POLICY_TOOL_NOT_FOUND');
  const ctx = requestCtx({ config: s.cfg, message: call('read_note', { path: '/a' }), principal: principal(), session: undefined });
  await assert.rejects(async () => s.stage.onRequest!(ctx), /initialized session/);
});

test('schemas are compiled once per definition across calls', async () => {
  const s = setup({});
  for (let i = 0; i < 20; i++) assert.equal(await s.run('read_note', { path: `/p${i}` }), undefined);
  assert.equal(s.validator.compiledCount, 1);
});

test('other methods pass untouched', async () => {
  const s = setup({});
  const ctx = requestCtx({ config: s.cfg, message: { jsonrpc: '2.0', id: 1, method: 'tools/list' }, principal: principal(), session: s.session });
  await s.stage.onRequest!(ctx);
  assert.equal(s.session.fetches, 0);
});
