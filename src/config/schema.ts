/**
 * The configuration contract: one YAML file, validated once at start-up, then frozen.
 *
 * Every field carries a description; `npm run schema` writes schema/config.json from this file
 * and a test fails when the committed schema is stale. Keys named in the issues are a contract
 * other tools rely on: `listen.host`, `listen.port`, `publicUrl`, `servers.NAME.stdio|http`.
 *
 * Each layer owns the fields it adds in its own file beside this one (auth.ts, policy.ts, ...),
 * so this file only assembles them.
 */
import { z } from 'zod';
import { authGlobalFields, authServerFields } from './auth.js';
import { policyGlobalFields, policyServerFields } from './policy.js';
import { integrityGlobalFields, integrityServerFields } from './integrity.js';
import { sanitizeGlobalFields, sanitizeServerFields, stdioHygieneFields, httpCredentialFields } from './sanitize.js';
import { UPSTREAM_RESERVED_HEADERS } from './upstream-hygiene.js';
import { auditGlobalFields } from './audit.js';
import { stateGlobalFields } from './state.js';

export const SERVER_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

const stdioUpstream = z
  .object({
    command: z.string().min(1).describe('Executable to start (resolved on PATH).'),
    args: z.array(z.string()).default([]).describe('Arguments passed to the command.'),
    env: z
      .record(z.string(), z.string())
      .default({})
      .describe('Environment for the child. Nothing else from the gateway environment is inherited except a short allowlist (PATH, HOME, LANG, TZ, NODE_OPTIONS is never passed).'),
    cwd: z.string().optional().describe('Working directory of the child (default: the directory of the config file).'),
    shared: z
      .boolean()
      .default(false)
      .describe(
        'Serve every session of this mount from one child process (ids and progress tokens remapped per session; messages the server sends on its own reach only the session they can be attributed to). Only for servers that keep no per-client state. Default: one child per session.',
      ),
    restart: z
      .object({
        initialDelayMs: z.number().int().min(0).default(200).describe('First restart delay after a crash.'),
        maxDelayMs: z.number().int().min(0).default(30_000).describe('Upper bound of the exponential backoff.'),
      })
      .strict()
      .default({ initialDelayMs: 200, maxDelayMs: 30_000 })
      .describe('Restart with exponential backoff when the process exits unexpectedly.'),
    ...stdioHygieneFields,
  })
  .strict();

const httpUpstream = z
  .object({
    url: z.string().url().describe('Streamable HTTP endpoint of the upstream MCP server.'),
    headers: z
      .record(z.string(), z.string())
      .default({})
      .superRefine((h, ctx) => {
        const seen = new Set<string>();
        for (const k of Object.keys(h)) {
          const name = k.toLowerCase();
          if (UPSTREAM_RESERVED_HEADERS.has(name)) ctx.addIssue({ code: 'custom', path: [k], message: `${k} is set by the gateway itself; remove it` });
          if (seen.has(name)) ctx.addIssue({ code: 'custom', path: [k], message: `${k} is given twice (header names ignore case)` });
          seen.add(name);
          // The value goes on the wire as is: no CR, LF or other control characters (header injection).
          if (!/^[\t\x20-\x7e\x80-\xff]*$/.test(h[k]!) || (name === 'host' && !/^[\x21-\x7e]{1,255}$/.test(h[k]!))) {
            ctx.addIssue({ code: 'custom', path: [k], message: `${k} has characters a header value cannot hold (control characters, line breaks${name === 'host' ? ', spaces' : ''})` });
          }
        }
      })
      .describe('Static, non-secret headers added to every upstream request (`Host` replaces the URL\'s host). Secrets go in `credentials`. Framing and MCP transport headers are the gateway\'s own.'),
    connectTimeoutMs: z.number().int().positive().default(10_000).describe('Timeout to establish an upstream connection.'),
    acceptTimeoutMs: z
      .number()
      .int()
      .positive()
      .max(2_147_483_647)
      .default(30_000)
      .describe(
        "Longest wait (ms) for the upstream to accept a notification or a response the gateway POSTs (its status line and headers), and for the head of the standalone GET stream opened after initialization. Later messages of the session wait behind either; past it the POST is aborted and that message fails (later messages go on), and the session goes on without the GET stream, which is retried like a failed connection (1, 2, 4… s, given up after 5 in a row). Requests are bounded by `requestTimeoutMs` instead.",
      ),
    caFile: z
      .string()
      .min(1)
      .optional()
      .describe('PEM file of CA certificates trusted for an https upstream, besides the system trust store (a private CA). Relative to the config file.'),
    ...httpCredentialFields,
  })
  .strict();

export const serverSchema = z
  .object({
    stdio: stdioUpstream.optional().describe('Run the upstream as a child process speaking MCP over stdio.'),
    http: httpUpstream.optional().describe('Reach the upstream over Streamable HTTP.'),
    requestTimeoutMs: z
      .number()
      .int()
      .positive()
      .default(120_000)
      .describe('A request with no upstream answer after this long gets a JSON-RPC error and the upstream a notifications/cancelled.'),
    ...authServerFields,
    ...policyServerFields,
    ...integrityServerFields,
    ...sanitizeServerFields,
  })
  .strict()
  .superRefine((s, ctx) => {
    if ((s.stdio ? 1 : 0) + (s.http ? 1 : 0) !== 1) {
      ctx.addIssue({ code: 'custom', message: 'a server needs exactly one of `stdio` or `http`' });
    }
  });

export const configSchema = z
  .object({
    listen: z
      .object({
        host: z.string().default('127.0.0.1').describe('Address to listen on. Default loopback.'),
        port: z.number().int().min(0).max(65535).default(8080).describe('Port to listen on (0 picks a free port).'),
      })
      .strict()
      .default({ host: '127.0.0.1', port: 8080 })
      .describe('The MCP listener.'),
    publicUrl: z
      .string()
      .url()
      .optional()
      .describe('Externally visible base URL. A server NAME is reachable at ${publicUrl}/mcp/NAME. Default: http://HOST:PORT of the listener.'),
    transport: z
      .object({
        maxBodyBytes: z.number().int().positive().default(4 * 1024 * 1024).describe('Largest accepted request body; larger gets 413.'),
        allowedOrigins: z
          .array(z.string())
          .default([])
          .describe('Origins allowed to call the gateway from a browser, exact match (scheme://host[:port]). The origin of publicUrl is always allowed. A request with any other Origin gets 403.'),
        allowedHosts: z
          .array(z.string())
          .default([])
          .describe('Host header values accepted (DNS rebinding protection), host[:port]. The host of publicUrl and the listener are always accepted.'),
        maxSessions: z.number().int().positive().default(10_000).describe('Most concurrent downstream sessions.'),
        sessionIdleTimeoutMs: z.number().int().positive().default(30 * 60_000).describe('A session idle this long is ended and its upstream closed.'),
        eventBufferSize: z
          .number()
          .int()
          .min(0)
          .default(256)
          .describe('SSE events kept per stream for resumption with Last-Event-ID.'),
        shutdownGraceMs: z.number().int().min(0).default(10_000).describe('On SIGTERM, how long in-flight requests may finish before exit.'),
      })
      .strict()
      .prefault({})
      .describe('Downstream Streamable HTTP limits and checks.'),
    servers: z
      .record(z.string().regex(SERVER_NAME, 'server names are lowercase letters, digits, _ and -'), serverSchema)
      .describe('Upstream MCP servers, each mounted at /mcp/NAME.'),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('Log level.'),
      })
      .strict()
      .prefault({})
      .describe('Operational logging (pino, JSON lines on stderr).'),
    ...authGlobalFields,
    ...policyGlobalFields,
    ...integrityGlobalFields,
    ...sanitizeGlobalFields,
    ...auditGlobalFields,
    ...stateGlobalFields,
  })
  .strict();

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
export type ServerConfig = z.output<typeof serverSchema>;
