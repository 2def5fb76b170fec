/**
 * Bench upstream: the echo tool on the SDK's McpServer + StdioServerTransport.
 * Started by the gateway as a stdio upstream (row gateway-stdio and the memory mode).
 */
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { createEchoServer } from './echo-tool.js';

await createEchoServer().connect(new StdioServerTransport());
