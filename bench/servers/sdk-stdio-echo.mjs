// @ts-check
/**
 * Bench upstream: the echo tool on the SDK's McpServer + StdioServerTransport.
 * Started by the gateway as a stdio upstream (rows gateway-stdio*, memory mode).
 */
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { createEchoServer } from './echo-tool.mjs';

await createEchoServer().connect(new StdioServerTransport());
