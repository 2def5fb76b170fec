/**
 * Micro-benchmark of the audit path of one tools/call: build the `tool.call.completed` event with
 * toolCallEvent (as the session does), emit it into the queue, and let the pump scrub, summarize
 * and write it with the stdout sink. Reports process CPU (user + system, all threads) per event,
 * not wall time, so other work on a shared machine moves the figure little.
 *
 *   npx tsx bench/audit-micro.ts [--events 200000] [--burst 16] [--sink discard|devnull] [--runs 5] [--harness-only] [--stage-durations]
 *                                [--reused-ids] [--no-principal] [--one-type]
 *
 * --burst: events emitted per turn of the event loop before yielding (a loaded gateway emits
 * several per turn; 1 is the idle worst case, where every event gets its own pump and write).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Writable } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { createAuditLog } from '../src/audit/log.js';
import { toolCallEvent } from '../src/audit/request.js';
import { StdoutAuditSink } from '../src/audit/sinks/stdout.js';
import type { RequestContext } from '../src/pipeline/context.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}

const EVENTS = Number(arg('events', '200000'));
const BURST = Math.max(1, Number(arg('burst', '16')));
const SINK = arg('sink', 'discard');
const RUNS = Math.max(1, Number(arg('runs', '5')));
/** Build the events and yield as usual, but emit nowhere: the harness's own cost, to subtract. */
const HARNESS_ONLY = process.argv.includes('--harness-only');
/** Per-stage durations in the record (audit.stageDurations); off by default, as in the gateway. */
const STAGE_DURATIONS = process.argv.includes('--stage-durations');
/**
 * As in the gateway (each off with its flag): a new request id per event (ids are seen once, so
 * the scrubber's cache never answers for them); the principal of a gateway without
 * authentication; and, before the warm-up, events of other types through another log, so the
 * JIT sees the mix of shapes a gateway's audit code sees (not one shape only). Without these
 * the figure was 2.3 µs per event against about 5.7 with them (2026-11-27).
 */
const FRESH = !process.argv.includes('--reused-ids');
const PRINCIPAL = !process.argv.includes('--no-principal');
const POLY = !process.argv.includes('--one-type');

const STAGES = [
  'transport.audit-gate', 'transport.http-shape', 'transport.origin', 'transport.body',
  'identity.authenticate', 'identity.revocation', 'identity.session', 'authorization.policy',
  'authorization.rate-limit', 'authorization.anomaly', 'application.tool-integrity', 'application.argument-validation',
];

const mount = { name: 'echo', config: {} as never, resource: 'http://127.0.0.1:8080/mcp/echo' };
const session = { id: randomBytes(32).toString('hex') } as never;

function fakeCtx(i: number): RequestContext {
  const timings: Record<string, number> = {};
  for (let s = 0; s < STAGES.length; s++) timings[STAGES[s]!] = 0.001 + ((i * 7 + s * 13) % 97) / 1000;
  return {
    requestId: randomUUID(),
    startedAt: performance.now() - 0.4,
    mount,
    http: { method: 'POST', path: '/mcp/echo', query: '', headers: {}, remoteAddress: '127.0.0.1', secure: false, peerCertificate: undefined } as never,
    session,
    message: { jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hello from the mcp-bastion bench' } } } as never,
    principal: PRINCIPAL ? ({ subject: 'anonymous', issuer: 'none', authMethod: 'none' } as never) : undefined,
    decisions: [],
    timings,
    locals: {},
  } as RequestContext;
}

function stream(): NodeJS.WritableStream {
  if (SINK === 'devnull') return createWriteStream('/dev/null');
  return new Writable({ write(_chunk, _enc, cb) { cb(); } });
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

async function once(n: number, ctxs: RequestContext[]): Promise<{ us: number; writes: number }> {
  let writes = 0;
  const out = stream();
  const sink = new StdoutAuditSink({ stream: out });
  const inner = sink.write.bind(sink);
  sink.write = (events) => {
    writes++;
    return inner(events);
  };
  const real = createAuditLog({ sinks: [sink], queue: { maxEvents: 1_000_000 }, stageDurations: STAGE_DURATIONS });
  const log = HARNESS_ONLY ? { emit(e: unknown): void { void e; }, flush: async (): Promise<void> => {} } : real;
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const cx = ctxs[i % ctxs.length]!;
    if (FRESH) (cx as { requestId: string }).requestId = randomUUID();
    log.emit(toolCallEvent(cx, { kind: 'completed', outcome: 'success', status: 'ok' }));
    if ((i + 1) % BURST === 0) await tick();
  }
  await log.flush();
  const c = process.cpuUsage(c0);
  await real.close();
  return { us: (c.user + c.system) / n, writes: Math.max(1, writes) };
}

async function main(): Promise<void> {
  const ctxs = Array.from({ length: 4096 }, (_, i) => fakeCtx(i));
  if (POLY) {
    const l = createAuditLog({ sinks: [new StdoutAuditSink({ stream: stream() })], queue: { maxEvents: 1_000_000 } });
    const types = ['session.created', 'session.ended', 'auth.failed', 'auth.succeeded', 'tool.definition.approved', 'output.sanitized', 'request.rejected', 'policy.denied', 'rate.limited', 'anomaly.detected'];
    for (let i = 0; i < 20000; i++) {
      const t = types[i % types.length]!;
      const e: Record<string, unknown> = { type: t, outcome: 'info', mount: 'echo', sessionId: 'abc' + (i % 7) };
      for (let k = 0; k < (i % 9); k++) e['f' + ((i + k) % 13)] = k % 2 ? 'v' + k : { x: k, y: [k] };
      l.emit(e as never);
      if (i % 16 === 0) await tick();
    }
    await l.flush();
    await l.close();
  }
  await once(Math.min(20_000, EVENTS), ctxs); // warm-up (JIT)
  const per: number[] = [];
  let writes = 0;
  for (let r = 0; r < RUNS; r++) {
    const x = await once(EVENTS, ctxs);
    per.push(x.us);
    writes = x.writes;
  }
  per.sort((a, b) => a - b);
  const med = per[Math.floor(per.length / 2)]!;
  process.stderr.write(
    `audit-micro${HARNESS_ONLY ? ' HARNESS ONLY' : ''} events=${EVENTS} burst=${BURST} sink=${SINK} stageDurations=${STAGE_DURATIONS} runs=${RUNS}: CPU µs/event median ${med.toFixed(2)} ` +
      `(min ${per[0]!.toFixed(2)}, max ${per.at(-1)!.toFixed(2)}); sink writes in last run ${writes} (${(EVENTS / writes).toFixed(1)} events/write)\n`,
  );
}

void main();
