/**
 * Instructions per tools/call in the gateway, counted by valgrind's callgrind: a figure that does
 * not move with the machine's load, for A/B comparisons of the gateway's own per-call work on a
 * noisy VM (CPU time per call moves by ±10% between runs there; this by well under 1%).
 *
 *   npx tsx bench/instructions.ts [--calls 2000] [--warmup 4000] [--concurrency 10]
 *                                 [--per-session] [--config '{"audit":{"sinks":[]}}']
 *
 * Runs dist/ (build first). The gateway serves the bench's SDK echo server over stdio, one shared
 * child by default (`--per-session`: a child per session); only the gateway process runs under
 * valgrind, and only the measured calls are counted (instrumentation is switched on after the warmup).
 * User-space instructions only: the kernel's share (sockets, pipes) is not in the count.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ROOT } from './harness.js';
import { BenchClient } from './mcp-client.js';
import { freePort, pollHealth } from './procs.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : fallback;
}

const calls = Number(arg('calls', '2000'));
const warmup = Number(arg('warmup', '4000'));
const concurrency = Number(arg('concurrency', '10'));
const shared = !process.argv.includes('--per-session');
const extra = JSON.parse(arg('config', '{}')) as Record<string, unknown>;

if (spawnSync('valgrind', ['--version']).status !== 0) {
  console.error('valgrind is not installed (apt-get install valgrind)');
  process.exit(2);
}

const dir = mkdtempSync(join(tmpdir(), 'bastion-instr-'));
const port = await freePort();
const config = join(dir, 'gateway.yaml');
writeFileSync(
  config,
  stringify({
    listen: { host: '127.0.0.1', port },
    servers: { echo: { stdio: { command: process.execPath, args: [join(ROOT, 'bench', 'servers', 'sdk-stdio-echo.mjs')], cwd: ROOT, shared }, tools: { echo: {} } } },
    ...extra,
  }),
);
const out = join(dir, 'callgrind.out');
const gateway = spawn(
  'valgrind',
  ['--tool=callgrind', '--instr-atstart=no', '--smc-check=all-non-file', `--callgrind-out-file=${out}`, process.execPath, join(ROOT, 'dist', 'cli', 'main.js'), 'serve', '--config', config],
  { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] },
);
const control = (...a: string[]): void => {
  const r = spawnSync('callgrind_control', [...a, String(gateway.pid)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`callgrind_control ${a.join(' ')}: ${r.stderr || r.stdout}`);
};

try {
  await pollHealth(`http://127.0.0.1:${port}/healthz`, 120_000);
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const clients: BenchClient[] = [];
  for (let i = 0; i < concurrency; i++) {
    const c = new BenchClient(new URL(`http://127.0.0.1:${port}/mcp/echo`), agent);
    await c.initialize();
    clients.push(c);
  }
  const run = async (n: number): Promise<void> => {
    let left = n;
    let errors = 0;
    await Promise.all(
      clients.map(async (c) => {
        while (left > 0) {
          left--;
          if ((await c.callEcho('hello from the mcp-bastion bench')) !== null) errors++;
        }
      }),
    );
    if (errors > 0) throw new Error(`${errors} calls failed`);
  };
  await run(warmup);
  control('-i', 'on');
  await run(calls);
  control('-i', 'off');
  control('-d');
  // `-d` writes the counts since instrumentation went on to callgrind.out.1.
  const text = readFileSync(`${out}.1`, 'utf8');
  const m = /^totals: (\d+)/m.exec(text);
  if (!m) throw new Error('no totals in the callgrind output');
  const ir = Number(m[1]);
  console.log(`gateway instructions per tools/call: ${Math.round(ir / calls).toLocaleString('en-US')} (${calls} calls at c=${concurrency}, ${shared ? 'shared child' : 'child per session'})`);
  await Promise.all(clients.map((c) => c.close()));
  agent.destroy();
} finally {
  gateway.kill('SIGTERM');
  await new Promise((r) => gateway.once('exit', r));
  if (!process.env.KEEP) rmSync(dir, { recursive: true, force: true });
}
