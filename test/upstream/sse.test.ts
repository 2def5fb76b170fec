import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SseParser, type SseEvent } from '../../src/upstream/sse.js';

function parse(chunks: string[], maxEventBytes = 1 << 20): { events: SseEvent[]; retries: number[]; errors: string[]; parser: SseParser } {
  const events: SseEvent[] = [];
  const retries: number[] = [];
  const errors: string[] = [];
  const parser = new SseParser({ onEvent: (e) => events.push(e), onRetry: (ms) => retries.push(ms), onError: (d) => errors.push(d) }, maxEventBytes);
  for (const c of chunks) parser.push(c);
  return { events, retries, errors, parser };
}

test('events: data lines joined with LF, event type, id, retry; comments and unknown fields ignored', () => {
  const { events, retries, parser } = parse([': comment\nevent: message\nid: 7\ndata: {"a":\ndata: 1}\nfoo: bar\nretry: 1500\n\n', 'data:x\n\n']);
  assert.deepEqual(events, [
    { id: '7', event: 'message', data: '{"a":\n1}' },
    { id: undefined, event: 'message', data: 'x' },
  ]);
  assert.deepEqual(retries, [1500]);
  assert.equal(parser.lastEventId, '7');
});

test('line ends: LF, CRLF and CR, including a CRLF split across two pushes', () => {
  const { events } = parse(['data: a\r\n\r\ndata: b\r\rdata: c\r', '\n\r', '\n']);
  assert.deepEqual(
    events.map((e) => e.data),
    ['a', 'b', 'c'],
  );
});

test('an empty chunk between a CR and its LF changes nothing (one event, not two)', () => {
  assert.deepEqual(
    parse(['data: a\r', '', '\ndata: b\n', '\n']).events.map((e) => e.data),
    ['a\nb'],
  );
});

test('a leading BOM is dropped; an event with only an id is not dispatched but sets the last id', () => {
  const { events, parser } = parse(['\ufeffid: p1\n\n', 'data: z\n\n']);
  assert.deepEqual(
    events.map((e) => e.data),
    ['z'],
  );
  assert.equal(parser.lastEventId, 'p1');
});

test('an event over the limit is an error, also while its line is still incomplete', () => {
  assert.deepEqual(parse(['data: ' + 'x'.repeat(100) + '\n\n'], 50).errors.length, 1);
  const { errors, events } = parse(['data: ' + 'x'.repeat(40), 'x'.repeat(40)], 50);
  assert.equal(errors.length, 1);
  assert.equal(events.length, 0);
});

test('cost is linear in the bytes received: an 8 MB line in 1 KB pushes, and 100,000 CR-ended lines before one LF', { timeout: 5_000 }, async () => {
  // A DoS guard, not a speed measure: with a rescan of the buffer per push or per line these
  // take 20 s and more (a minute on a slow machine); linear, they take well under a second.
  // The pushes yield to the event loop now and then so the timeout can fire.
  const events: SseEvent[] = [];
  const errors: string[] = [];
  const parser = new SseParser({ onEvent: (e) => events.push(e), onError: (d) => errors.push(d) }, 16 << 20);
  const piece = 'y'.repeat(1024);
  parser.push('data: ');
  for (let i = 0; i < 8192; i++) {
    parser.push(piece);
    if (i % 256 === 0) await new Promise((r) => setImmediate(r));
  }
  parser.push('\n\n');
  assert.deepEqual(errors, []);
  assert.equal(events.length, 1);
  assert.equal(events[0]!.data.length, 8 << 20);

  const many = parse([`${'data: q\r'.repeat(100_000)}\r\n`], 8 << 20);
  assert.equal(many.errors.length, 0);
  assert.equal(many.events.length, 1);
  assert.equal(many.events[0]!.data.split('\n').length, 100_000);
});
