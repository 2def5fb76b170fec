/**
 * The gateway as a transparent MCP proxy (issue 2): the official SDK client sees the same
 * results through the gateway as directly, over stdio and Streamable HTTP upstreams, including
 * a third-party server from npm.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Gateway } from '../../src/server.js';
import { connectClient, demoStdio, everythingHttp, everythingStdio, gateway, stopProcess } from '../helpers/gateway.js';

async function direct(cmd: { command: string; args: string[]; cwd: string }): Promise<Client> {
  const c = new Client({ name: 'direct', version: '1' });
  await c.connect(new StdioClientTransport({ command: cmd.command, args: cmd.args, cwd: cmd.cwd, stderr: 'ignore' }));
  return c;
}

describe('transparent proxy', () => {
  let gw: Gateway;
  let http: { url: string; child: ChildProcess };

  before(async () => {
    http = await everythingHttp();
    gw = await gateway({
      servers: {
        notes: { stdio: demoStdio() },
        everything: { stdio: everythingStdio() },
        'everything-http': { http: { url: http.url } },
      },
    }, { bare: true });
  });
  after(async () => {
    await gw?.close();
    if (http) await stopProcess(http.child);
  });

  test('demo upstream over stdio: same tools, resources, prompts and results as direct', async () => {
    const d = await direct(demoStdio());
    const { client: g } = await connectClient(`${gw.url}/mcp/notes`);
    try {
      assert.deepEqual((await g.listTools()).tools, (await d.listTools()).tools);
      assert.deepEqual(await g.callTool({ name: 'echo', arguments: { text: 'héllo ⟦x⟧' } }), await d.callTool({ name: 'echo', arguments: { text: 'héllo ⟦x⟧' } }));
      await g.callTool({ name: 'write_note', arguments: { title: 'a', body: 'one' } });
      const read = await g.callTool({ name: 'read_note', arguments: { title: 'a' } });
      assert.match(JSON.stringify(read), /one/);
      assert.deepEqual((await g.listPrompts()).prompts, (await d.listPrompts()).prompts);
      assert.deepEqual((await g.listResourceTemplates()).resourceTemplates, (await d.listResourceTemplates()).resourceTemplates);
      assert.deepEqual(g.getServerVersion(), d.getServerVersion());
      assert.equal(g.getInstructions(), d.getInstructions());
    } finally {
      await g.close();
      await d.close();
    }
  });

  test('third-party server-everything over stdio and over HTTP: same tools and echo as direct', async () => {
    // Every client opened is closed, even when a later one fails to connect: a stdio child left
    // running would keep this test file from ever exiting.
    const opened: Client[] = [];
    const open = async (c: Promise<Client>): Promise<Client> => {
      const client = await c;
      opened.push(client);
      return client;
    };
    try {
      const d = await open(direct(everythingStdio()));
      const dh = await open(
        (async () => {
          const c = new Client({ name: 'direct-http', version: '1' });
          await c.connect(new StreamableHTTPClientTransport(new URL(http.url)));
          return c;
        })(),
      );
      const g = await open(connectClient(`${gw.url}/mcp/everything`).then((r) => r.client));
      const gh = await open(connectClient(`${gw.url}/mcp/everything-http`).then((r) => r.client));
      const tools = (await d.listTools()).tools;
      assert.ok(tools.length > 3);
      assert.deepEqual((await g.listTools()).tools, tools);
      assert.deepEqual((await gh.listTools()).tools, (await dh.listTools()).tools);
      const echo = tools.find((t) => t.name === 'echo');
      assert.ok(echo, 'server-everything has an echo tool');
      const args = { message: 'through the gateway' };
      const expected = await d.callTool({ name: 'echo', arguments: args });
      assert.deepEqual(await g.callTool({ name: 'echo', arguments: args }), expected);
      assert.deepEqual(await gh.callTool({ name: 'echo', arguments: args }), await dh.callTool({ name: 'echo', arguments: args }));
      assert.deepEqual((await gh.listResources()).resources.slice(0, 5), (await dh.listResources()).resources.slice(0, 5));
      const prompts = (await dh.listPrompts()).prompts;
      assert.deepEqual((await gh.listPrompts()).prompts, prompts);
    } finally {
      await Promise.all(opened.map((c) => c.close()));
    }
  });

  test('progress notifications reach the client on the request stream', async () => {
    const { client: g } = await connectClient(`${gw.url}/mcp/everything-http`);
    try {
      const tools = (await g.listTools()).tools;
      const long = tools.find((t) => /long/i.test(t.name));
      assert.ok(long, `a long-running tool exists: ${tools.map((t) => t.name).join(', ')}`);
      const progress: number[] = [];
      const r = await g.callTool({ name: long.name, arguments: { duration: 0.3, steps: 3 } }, undefined, {
        onprogress: (p) => progress.push(p.progress),
      });
      assert.ok(Array.isArray(r.content));
      assert.ok(progress.length >= 2, `progress events received: ${progress.length}`);
    } finally {
      await g.close();
    }
  });
});
