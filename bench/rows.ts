/**
 * The rows of the bench: each one a way of serving the same `echo` tool. A row starts its
 * processes (pinned to the CPU under test), returns the MCP endpoint and the processes whose
 * CPU time counts, and stops them afterwards.
 *
 * To add a row (auth on, policy rules, audit sinks, Redis store, ...): write a RowDef below and
 * add it to ROWS; `npm run bench -- --rows ID` selects it, and a row with a `flag` is also
 * added to the default rows by its option (`--auth`: flag 'auth'; `--store redis`: 'store-redis';
 * see rowFlags() in run.ts). Gateway rows share startGateway(),
 * which takes the `servers.echo` entry plus any extra top-level config keys.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { BenchClient, PROTOCOL_VERSION } from './mcp-client.js';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startIssuer } from './issuer.js';
import { freePort, rssKb, processTree, startProcess, type NamedProcess, type Started } from './procs.js';

export interface RowContext {
  /** Repository root. */
  root: string;
  /** CPU list the processes under test are pinned to, or undefined (not pinned). */
  cpu: string | undefined;
  /** Directory for logs and generated configs of this run. */
  workDir: string;
  /** Why the gateway cannot run (no build, no `serve` command), or null when it can. */
  gatewayUnavailable: string | null;
  /** Start the SDK HTTP echo server with enableJsonResponse. */
  sdkJson: boolean;
  /** Start node processes with --expose-gc (memory mode). */
  exposeGc: boolean;
  /** Write a V8 CPU profile of every process under test into workDir/profiles (`--profile`). */
  profile: boolean;
}

export interface MemoryReading {
  /** VmRSS of the main process under test (gateway or SDK server). */
  rssKb: number | null;
  /** VmRSS summed over its child processes (a stdio upstream), if any. */
  childrenRssKb: number | null;
  /** V8 heap used, when the process reports it (SDK server: bench endpoint; gateway: /metrics). */
  heapUsedBytes: number | null;
}

export interface RunningRow {
  url: string;
  /** Headers the load generator sends on every request (e.g. a bearer token). Never printed. */
  headers?: Record<string, string>;
  processes: NamedProcess[];
  memory(): Promise<MemoryReading>;
  /** After the cells: a reason the figures do not mean what the row says (e.g. Redis never used), or null. */
  verify?(): Promise<string | null>;
  stop(): Promise<void>;
}

export interface RowDef {
  id: string;
  label: string;
  /** One line for the docs and the JSON: what is measured. */
  describe: string;
  needsGateway: boolean;
  /** An extra row, run only when asked for (`--auth` adds rows with flag 'auth') or named in --rows. */
  flag?: string;
  /** The concurrency levels this row is measured at, among those of the run (default: all). */
  concurrency?: readonly number[];
  /** Unmeasured warm-up of each of this row's cells instead of the run's `--warmup`. */
  warmupMs?: number;
  start(ctx: RowContext): Promise<RunningRow>;
}

/** Processes under test run plain node on plain JavaScript (no TypeScript loader in them). */
const nodeArgs = (ctx: RowContext, script: string): string[] => [...nodeFlags(ctx, script.replace(/\.mjs$/, '')), join(ctx.root, 'bench', 'servers', script)];

function nodeFlags(ctx: RowContext, name: string): string[] {
  return [
    ...(ctx.exposeGc ? ['--expose-gc'] : []),
    ...(ctx.profile ? ['--cpu-prof', '--cpu-prof-dir', join(ctx.workDir, 'profiles', name)] : []),
    // Extra node/V8 flags for every process under test, e.g. BENCH_NODE_FLAGS="--trace-deopt".
    ...(process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter((f) => f !== ''),
  ];
}

/** A script of bench/servers run by plain node, pinned, logging to NAME.log, ready once it prints its port. */
function startBenchServer(ctx: RowContext, name: string, script: string, extraArgs: string[]): Promise<Started> {
  return startProcess({
    name,
    command: process.execPath,
    args: [...nodeArgs(ctx, script), ...extraArgs],
    cwd: ctx.root,
    cpu: ctx.cpu,
    logFile: join(ctx.workDir, `${name}.log`),
    readyLine: true,
  });
}

function startSdkEcho(ctx: RowContext): Promise<Started> {
  return startBenchServer(ctx, 'sdk-echo', 'sdk-http-echo.mjs', ctx.sdkJson ? ['--json'] : []);
}

function getJson(url: string): Promise<unknown> {
  return new Promise((resolve) => {
    const req = request(url, { timeout: 5_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        if (res.statusCode !== 200) return resolve(undefined);
        try {
          resolve(JSON.parse(text));
        } catch {
          resolve(text);
        }
      });
    });
    req.on('error', () => resolve(undefined));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

function childrenRss(pid: number): number | null {
  const kids = processTree(pid).filter((p) => p !== pid);
  if (kids.length === 0) return null;
  return kids.reduce((sum, p) => sum + (rssKb(p) ?? 0), 0);
}

async function sdkMemory(p: Started): Promise<MemoryReading> {
  const mem = (await getJson(`http://127.0.0.1:${p.port}/_bench/memory`)) as { heapUsed?: number } | undefined;
  return { rssKb: rssKb(p.pid), childrenRssKb: null, heapUsedBytes: mem?.heapUsed ?? null };
}

/** Heap used from a Prometheus exposition (prom-client default metrics), if the gateway serves one. */
async function gatewayMemory(p: Started, base: string): Promise<MemoryReading> {
  let heap: number | null = null;
  const text = await getJson(`${base}/metrics`);
  if (typeof text === 'string') {
    const m = /^(?:[a-z]+_)?nodejs_heap_size_used_bytes(?:\{[^}]*\})?\s+([0-9.e+]+)/m.exec(text);
    if (m) heap = Number(m[1]);
  }
  return { rssKb: rssKb(p.pid), childrenRssKb: childrenRss(p.pid), heapUsedBytes: heap };
}

/** Commands Redis has processed so far (INFO stats), through redis-cli. */
function redisCommands(port: number): number {
  const r = spawnSync('redis-cli', ['-p', String(port), 'info', 'stats'], { encoding: 'utf8', timeout: 5_000 });
  const m = /total_commands_processed:(\d+)/.exec(r.stdout ?? '');
  return m ? Number(m[1]) : 0;
}

async function waitForRedis(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8', timeout: 2_000 });
    if (r.stdout?.trim() === 'PONG') return;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`redis-server on port ${port} did not answer PING (is redis-server installed?)`);
}

/** HTTP status of an initialize sent without credentials. */
async function unauthenticatedStatus(url: string): Promise<number> {
  const agent = new Agent({ keepAlive: false });
  try {
    const r = await new BenchClient(new URL(url), agent).post(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'bench-probe', version: '1.0.0' } },
      }),
      1,
    );
    return r.status;
  } finally {
    agent.destroy();
  }
}

/**
 * Start `node dist/cli/main.js serve --config FILE` with one server named `echo`, wait for
 * GET /healthz, and return the MCP endpoint /mcp/echo.
 */
export async function startGateway(
  ctx: RowContext,
  name: string,
  echo: Record<string, unknown>,
  extra: Record<string, unknown> = {},
  listenPort?: number,
): Promise<{ gateway: Started; url: string; base: string }> {
  if (ctx.gatewayUnavailable) throw new Error(ctx.gatewayUnavailable);
  const port = listenPort ?? (await freePort());
  const base = `http://127.0.0.1:${port}`;
  const configFile = join(ctx.workDir, `${name}.yaml`);
  // BENCH_GATEWAY_CONFIG: JSON merged into every gateway row's config, for A/B runs, e.g.
  // '{"audit":{"sinks":[]}}' to see what auditing costs in a given row.
  const ab = process.env.BENCH_GATEWAY_CONFIG ? (JSON.parse(process.env.BENCH_GATEWAY_CONFIG) as Record<string, unknown>) : {};
  writeFileSync(configFile, stringify({ listen: { host: '127.0.0.1', port }, servers: { echo }, ...extra, ...ab }));
  const gateway = await startProcess({
    name: 'gateway',
    command: process.execPath,
    args: [...nodeFlags(ctx, name), join(ctx.root, 'dist', 'cli', 'main.js'), 'serve', '--config', configFile],
    cwd: ctx.root,
    cpu: ctx.cpu,
    logFile: join(ctx.workDir, `${name}.log`),
    healthUrl: `${base}/healthz`,
  });
  return { gateway, url: `${base}/mcp/echo`, base };
}

/** Tools are denied unless listed (policy `defaultTool: deny`): the gateway rows list `echo`. */
const ALLOW_ECHO = { echo: {} };

/**
 * The gateway in front of the stdio echo server: a child per session (the default), or one
 * shared child; `extra`: top-level config keys (audit sinks, ...).
 */
async function startStdioRow(ctx: RowContext, name: string, o: { shared?: boolean; extra?: Record<string, unknown> } = {}): Promise<RunningRow> {
  const { gateway, url, base } = await startGateway(
    ctx,
    name,
    { stdio: { command: process.execPath, args: nodeArgs(ctx, 'sdk-stdio-echo.mjs'), cwd: ctx.root, ...(o.shared ? { shared: true } : {}) }, tools: ALLOW_ECHO },
    o.extra,
  );
  return { url, processes: [{ name: 'gateway', pid: gateway.pid }], memory: () => gatewayMemory(gateway, base), stop: () => gateway.stop() };
}

export const ROWS: RowDef[] = [
  {
    id: 'sdk-direct',
    label: 'SDK direct',
    describe: 'SDK McpServer on its own StreamableHTTPServerTransport (stateful, node:http), no hop',
    needsGateway: false,
    async start(ctx) {
      const sdk = await startSdkEcho(ctx);
      return {
        url: `http://127.0.0.1:${sdk.port}/mcp`,
        processes: [{ name: 'sdk-echo', pid: sdk.pid }],
        memory: () => sdkMemory(sdk),
        stop: () => sdk.stop(),
      };
    },
  },
  {
    id: 'bare-proxy',
    label: 'bare proxy -> SDK',
    describe: 'node:http pass-through proxy (keep-alive agent, pipes bodies) in front of the SDK server',
    needsGateway: false,
    async start(ctx) {
      const sdk = await startSdkEcho(ctx);
      try {
        const proxy = await startBenchServer(ctx, 'bare-proxy', 'bare-proxy.mjs', ['--upstream', `http://127.0.0.1:${sdk.port}`]);
        return {
          url: `http://127.0.0.1:${proxy.port}/mcp`,
          processes: [
            { name: 'bare-proxy', pid: proxy.pid },
            { name: 'sdk-echo', pid: sdk.pid },
          ],
          memory: () => sdkMemory(sdk),
          stop: async () => {
            await proxy.stop();
            await sdk.stop();
          },
        };
      } catch (err) {
        await sdk.stop();
        throw err;
      }
    },
  },
  {
    id: 'bare-stdio',
    label: 'bare stdio proxy -> SDK (stdio)',
    describe: 'the cheapest Streamable HTTP to stdio hop (bench/servers/bare-stdio-proxy.mjs: node:http, one shared stdio child, ids remapped, nothing else) in front of the stdio echo server: the ceiling of the stdio rows (c=10 only: the ratios use no other cell, and the bench stays under 2 minutes)',
    needsGateway: false,
    concurrency: [10],
    async start(ctx) {
      const proxy = await startBenchServer(ctx, 'bare-stdio', 'bare-stdio-proxy.mjs', ['--', process.execPath, ...nodeArgs(ctx, 'sdk-stdio-echo.mjs')]);
      return {
        url: `http://127.0.0.1:${proxy.port}/mcp`,
        processes: [{ name: 'bare-stdio', pid: proxy.pid }],
        memory: async () => ({ rssKb: rssKb(proxy.pid), childrenRssKb: childrenRss(proxy.pid), heapUsedBytes: null }),
        stop: () => proxy.stop(),
      };
    },
  },
  {
    id: 'gateway-http',
    label: 'mcp-bastion -> SDK (http)',
    describe: 'mcp-bastion with an HTTP upstream: the SDK server above',
    needsGateway: true,
    async start(ctx) {
      const sdk = await startSdkEcho(ctx);
      try {
        const { gateway, url, base } = await startGateway(ctx, 'gateway-http', { http: { url: `http://127.0.0.1:${sdk.port}/mcp` }, tools: ALLOW_ECHO });
        return {
          url,
          processes: [
            { name: 'gateway', pid: gateway.pid },
            { name: 'sdk-echo', pid: sdk.pid },
          ],
          memory: () => gatewayMemory(gateway, base),
          stop: async () => {
            await gateway.stop();
            await sdk.stop();
          },
        };
      } catch (err) {
        await sdk.stop();
        throw err;
      }
    },
  },
  {
    id: 'gateway-stdio',
    label: 'mcp-bastion -> SDK (stdio)',
    describe: 'mcp-bastion with a stdio upstream: SDK McpServer + StdioServerTransport, same tool',
    needsGateway: true,
    start: (ctx) => startStdioRow(ctx, 'gateway-stdio'),
  },
  {
    id: 'gateway-stdio-warm',
    label: 'mcp-bastion -> SDK (stdio), warm children',
    describe:
      'gateway-stdio at c=10 after a 12 s warm-up instead of 1 s: each cell opens new sessions, so a child per session is a new process that only its own share of the calls warms up (JIT); this row measures those children warm',
    needsGateway: true,
    flag: 'warm',
    concurrency: [10],
    warmupMs: 12_000,
    start: (ctx) => startStdioRow(ctx, 'gateway-stdio-warm'),
  },
  {
    id: 'gateway-stdio-shared',
    label: 'mcp-bastion -> SDK (stdio, shared child)',
    describe: 'the stdio row with `stdio.shared: true`: one upstream process serves every session (ids remapped per session)',
    needsGateway: true,
    start: (ctx) => startStdioRow(ctx, 'gateway-stdio-shared', { shared: true }),
  },
  {
    id: 'gateway-stdio-no-audit',
    label: 'mcp-bastion -> SDK (stdio), audit off',
    describe: 'the stdio row with no audit sink: its CPU per call against gateway-stdio (audit to stdout, the default) is the cost of auditing',
    needsGateway: true,
    flag: 'audit',
    start: (ctx) => startStdioRow(ctx, 'gateway-stdio-no-audit', { extra: { audit: { sinks: [] } } }),
  },
  {
    id: 'gateway-stdio-audit-chain',
    label: 'mcp-bastion -> SDK (stdio), signed audit file',
    describe: 'the stdio row auditing to a hash-chained file with Ed25519 checkpoints every 1000 records',
    needsGateway: true,
    flag: 'audit',
    async start(ctx) {
      const { generateKeyPairSync } = await import('node:crypto');
      const keyFile = join(ctx.workDir, 'audit-key.pem');
      writeFileSync(keyFile, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
      return startStdioRow(ctx, 'gateway-stdio-audit-chain', {
        extra: { audit: { sinks: [{ type: 'file', path: join(ctx.workDir, 'audit.jsonl'), checkpoint: { keyFile, everyRecords: 1000 } }] } },
      });
    },
  },
  {
    id: 'gateway-stdio-auth',
    label: 'mcp-bastion -> SDK (stdio), JWT',
    describe: 'the stdio row with authentication on: an ES256 access token (jose) checked against a local JWKS issuer, and a per-tool scope policy',
    needsGateway: true,
    flag: 'auth',
    async start(ctx) {
      const issuer = await startIssuer();
      try {
        const port = await freePort();
        const base = `http://127.0.0.1:${port}`;
        const { gateway, url } = await startGateway(
          ctx,
          'gateway-stdio-auth',
          {
            stdio: { command: process.execPath, args: nodeArgs(ctx, 'sdk-stdio-echo.mjs'), cwd: ctx.root },
            auth: { required: true },
            // a policy lookup and a scope check per call: the tool needs the scope the token carries
            tools: { echo: { scopes: ['mcp'] } },
          },
          { publicUrl: base, auth: { issuers: [{ issuer: issuer.issuer, jwksUri: issuer.jwksUri }] } },
          port,
        );
        const token = await issuer.mint(url);
        // The row means something only if authentication is enforced: check that a request
        // without the token is refused before measuring the one with it.
        const status = await unauthenticatedStatus(url);
        if (status !== 401) {
          await gateway.stop();
          throw new Error(`the gateway answered HTTP ${status} to an initialize without a token (expected 401): authentication is not enforced, so this row would not measure it`);
        }
        return {
          url,
          headers: { authorization: `Bearer ${token}` },
          processes: [{ name: 'gateway', pid: gateway.pid }],
          memory: () => gatewayMemory(gateway, base),
          stop: async () => {
            await gateway.stop();
            await issuer.close();
          },
        };
      } catch (err) {
        await issuer.close();
        throw err;
      }
    },
  },
  {
    id: 'gateway-stdio-redis',
    label: 'mcp-bastion -> SDK (stdio), Redis',
    describe: 'the stdio row with the Redis state store (redis-server pinned with the processes under test) and a rate limit on the tool, so every call runs the Redis token bucket',
    needsGateway: true,
    flag: 'store-redis',
    async start(ctx) {
      const redisPort = await freePort();
      const redis = await startProcess({
        name: 'redis',
        command: 'redis-server',
        args: ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
        cwd: ctx.workDir,
        cpu: ctx.cpu,
        logFile: join(ctx.workDir, 'redis.log'),
      });
      try {
        await waitForRedis(redisPort);
        const { gateway, url, base } = await startGateway(
          ctx,
          'gateway-stdio-redis',
          {
            stdio: { command: process.execPath, args: nodeArgs(ctx, 'sdk-stdio-echo.mjs'), cwd: ctx.root },
            // a limit no call reaches: every call takes a token from the bucket in Redis
            tools: { echo: { rateLimit: '1000000/second' } },
          },
          { state: { type: 'redis', url: `redis://127.0.0.1:${redisPort}` } },
        );
        const commandsAtStart = redisCommands(redisPort);
        return {
          url,
          processes: [
            { name: 'gateway', pid: gateway.pid },
            { name: 'redis', pid: redis.pid },
          ],
          memory: () => gatewayMemory(gateway, base),
          verify: async () => {
            const n = redisCommands(redisPort) - commandsAtStart;
            return n > 0 ? null : 'Redis processed no command during the run: the gateway did not use the Redis store';
          },
          stop: async () => {
            await gateway.stop();
            await redis.stop();
          },
        };
      } catch (err) {
        await redis.stop();
        throw err;
      }
    },
  },
];

/** Why the gateway rows cannot run, or null. */
export function gatewayAvailability(root: string): string | null {
  const main = join(root, 'dist', 'cli', 'main.js');
  if (!existsSync(main)) return 'dist/cli/main.js not built (npm run build failed or was skipped)';
  const help = spawnSync(process.execPath, [main, 'serve', '--help'], { cwd: root, encoding: 'utf8', timeout: 15_000 });
  if (help.status !== 0) return 'the built CLI has no `serve` command yet (node dist/cli/main.js serve --help failed)';
  return null;
}
