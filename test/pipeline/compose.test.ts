import { test } from 'node:test';
import assert from 'node:assert/strict';
import { composePipeline } from '../../src/pipeline/compose.js';
import type { RequestContext, Stage } from '../../src/pipeline/context.js';

test('stages run in phase order whatever order they are given in', async () => {
  const seen: string[] = [];
  const mk = (name: string, phase: Stage['phase'], async = false): Stage => ({
    name,
    phase,
    onRequest: async
      ? async () => {
          seen.push(name);
        }
      : () => {
          seen.push(name);
        },
  });
  const p = composePipeline([
    mk('application.pin', 'application'),
    mk('identity.bearer', 'identity', true),
    mk('transport.origin', 'transport'),
    mk('authorization.policy', 'authorization', true),
  ]);
  await p.runRequest({ timings: {} } as unknown as RequestContext);
  assert.deepEqual(seen, ['transport.origin', 'identity.bearer', 'authorization.policy', 'application.pin']);
});

test('a refusing stage stops the pipeline', async () => {
  const seen: string[] = [];
  const p = composePipeline([
    { name: 'transport.a', phase: 'transport', onRequest: () => { seen.push('a'); throw new Error('no'); } },
    { name: 'identity.b', phase: 'identity', onRequest: () => { seen.push('b'); } },
  ]);
  await assert.rejects(p.runRequest({ timings: {} } as unknown as RequestContext), /no/);
  assert.deepEqual(seen, ['a']);
});

test('stage names must carry their phase and be unique', () => {
  assert.throws(() => composePipeline([{ name: 'origin', phase: 'transport' }]), /must be named transport/);
  assert.throws(
    () => composePipeline([{ name: 'transport.a', phase: 'transport' }, { name: 'transport.a', phase: 'transport' }]),
    /duplicate/,
  );
});

test('each stage that ran has its duration in ctx.timings', async () => {
  const p = composePipeline([
    { name: 'transport.a', phase: 'transport', onRequest: () => {} },
    { name: 'identity.b', phase: 'identity', onRequest: async () => {} },
  ]);
  const ctx = { timings: {} } as RequestContext;
  await p.runRequest(ctx);
  assert.deepEqual(Object.keys(ctx.timings), ['transport.a', 'identity.b']);
  for (const v of Object.values(ctx.timings)) assert.ok(v >= 0);
});
