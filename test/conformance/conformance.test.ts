/**
 * The official MCP conformance server suite (`--suite all`) against the repo's fixture upstream:
 * directly (the fixture on the SDK's own Streamable HTTP transport), and through the gateway
 * with the same fixture as a stdio upstream and as an HTTP upstream. The gateway must pass
 * exactly the scenarios the fixture passes directly.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { FIXTURE_TOOLS, startConformanceHttp, type FixtureHttp } from '../fixtures/conformance-server.js';
import { formatSummary, runConformance, type ScenarioResult } from '../../scripts/conformance.js';
import { compileFixture } from '../fixtures/compile-fixture.js';
import { parseConfig } from '../../src/config/load.js';
import { startGatewayFromConfig } from '../../src/gateway.js';
import { createLogger } from '../../src/logger.js';

const FIXTURE_ENTRY = new URL('../fixtures/conformance-server.ts', import.meta.url).pathname;
/** Scenarios of conformance 0.1.16 `--suite all` (npx conformance list --server). */
const SCENARIO_COUNT = 32;

let fixture: FixtureHttp;
let direct: ScenarioResult[] = [];

before(async () => {
  fixture = await startConformanceHttp();
});
after(async () => {
  await fixture.close();
});

const passing = (rs: readonly ScenarioResult[]): string[] => rs.filter((r) => r.failed === 0).map((r) => r.scenario).sort();

test('the fixture passes the whole conformance suite directly (SDK Streamable HTTP transport)', async () => {
  const run = await runConformance({ url: fixture.url, suite: 'all', timeoutMs: 90_000 });
  direct = run.results;
  assert.equal(run.results.length, SCENARIO_COUNT, `expected ${SCENARIO_COUNT} scenarios, got:\n${run.output.slice(-2000)}`);
  assert.deepEqual(
    run.results.filter((r) => r.failed > 0).map((r) => r.scenario),
    [],
    formatSummary(run.results),
  );
  assert.equal(run.exitCode, 0);
});

test('the fixture serves the same tools over stdio', async () => {
  const client = new Client({ name: 'fixture-stdio-test', version: '0' });
  await client.connect(
    new StdioClientTransport({ command: process.execPath, args: [compileFixture(FIXTURE_ENTRY), '--stdio'], env: { PATH: process.env.PATH ?? '' } }),
  );
  try {
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name), FIXTURE_TOOLS.map((t) => t.name));
    const r = await client.callTool({ name: 'test_simple_text', arguments: {} });
    assert.deepEqual(r.content, [{ type: 'text', text: 'This is a simple text response for testing.' }]);
    const res = await client.readResource({ uri: 'test://template/42/data' });
    assert.match(JSON.stringify(res.contents), /Data for ID: 42/);
  } finally {
    await client.close();
  }
});

// Through the gateway, with every layer the configuration asks for (startGatewayFromConfig):
// identity (off: loopback, no issuer), policy (open), rate limits, argument validation,
// tool integrity (tofu), output sanitizer (defaults), audit (no sinks).
interface GatewayHandle {
  url: string;
  close(): Promise<void>;
}

/**
 * A gateway fronting the fixture as a stdio child or as an HTTP upstream. One gateway per
 * upstream: mounted side by side, the two copies' identical tool names would (rightly) trip the
 * integrity layer's cross-server name-collision rule.
 */
async function startGatewayWithFixture(kind: 'stdio' | 'http'): Promise<GatewayHandle> {
  const open = { defaultTool: 'allow', defaultResource: 'allow', defaultPrompt: 'allow' } as const;
  const upstream =
    kind === 'stdio' ? { stdio: { command: process.execPath, args: [compileFixture(FIXTURE_ENTRY), '--stdio'] } } : { http: { url: fixture.url } };
  const loaded = parseConfig({
    listen: { host: '127.0.0.1', port: 0 },
    log: { level: 'silent' },
    audit: { sinks: [] },
    integrity: { persistTofu: false }, // pins stay in memory: no lockfile written into the repo
    servers: { [kind]: { ...upstream, ...open } },
  });
  return startGatewayFromConfig(loaded, { logger: createLogger('silent') });
}

const gateways: GatewayHandle[] = [];
after(async () => {
  for (const g of gateways) await g.close();
});

/** Both mounts are run concurrently (the suite mostly waits on timers), each compared with the direct run. */
let gatewayRuns: Promise<Record<'stdio' | 'http', Awaited<ReturnType<typeof runConformance>>>> | undefined;

async function throughGateway(mount: 'stdio' | 'http'): Promise<void> {
  assert.ok(direct.length === SCENARIO_COUNT, 'the direct run must come first');
  gatewayRuns ??= (async () => {
    const [gs, gh] = await Promise.all([startGatewayWithFixture('stdio'), startGatewayWithFixture('http')]);
    gateways.push(gs, gh);
    const [stdio, http] = await Promise.all([
      runConformance({ url: `${gs.url}/mcp/stdio`, suite: 'all', timeoutMs: 240_000 }),
      runConformance({ url: `${gh.url}/mcp/http`, suite: 'all', timeoutMs: 240_000 }),
    ]);
    return { stdio, http };
  })();
  const run = (await gatewayRuns)[mount];
  assert.equal(run.results.length, SCENARIO_COUNT, run.output.slice(-2000));
  assert.deepEqual(passing(run.results), passing(direct), `through the gateway (${mount} upstream):\n${formatSummary(run.results)}`);
}

test('through the gateway, fixture as stdio upstream: the same scenarios pass as directly', async () => {
  await throughGateway('stdio');
});

test('through the gateway, fixture as HTTP upstream: the same scenarios pass as directly', async () => {
  await throughGateway('http');
});
