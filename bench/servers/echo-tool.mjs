// @ts-check
/**
 * The one tool every bench row serves: `echo` returns its `text` argument as text content.
 * Shared by the HTTP and the stdio echo servers so both rows measure the same tool.
 *
 * The processes under test are plain JavaScript run by plain `node` (no TypeScript loader),
 * so their start-up and per-call cost is what a deployed server would have.
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';

/** @returns {McpServer} */
export function createEchoServer() {
  const server = new McpServer({ name: 'bench-echo', version: '1.0.0' });
  server.registerTool(
    'echo',
    { description: 'Returns its text argument unchanged.', inputSchema: { text: z.string() } },
    async ({ text }) => ({ content: [{ type: 'text', text }] }),
  );
  return server;
}
