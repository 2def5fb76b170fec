/**
 * `bastion dev`: everything on one laptop, secure by default. Starts the embedded authorization
 * server (loaded only here), the gateway with authentication required, and the demo upstream,
 * prints a working client recipe, and writes the same facts to .bastion/dev.json for scripts.
 */
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { parseConfig, startGatewayFromConfig, type ConfigInput } from '../index.js';
import { installShutdown } from './serve.js';

interface DevOptions {
  port: string;
  asPort: string;
  host: string;
  stateDir: string;
  autoLogin?: string;
  unsafeExpose?: boolean;
}

const HERE = dirname(fileURLToPath(import.meta.url));

/** The demo upstream: the compiled server next to this file, or the source through tsx. */
function demoUpstream(): { command: string; args: string[]; cwd: string } {
  const cwd = resolve(HERE, '../..'); // the package root, so `--import tsx` resolves in source mode
  const js = resolve(HERE, '../demo/notes-server.js');
  if (existsSync(js)) return { command: process.execPath, args: [js], cwd };
  return { command: process.execPath, args: ['--import', 'tsx', resolve(HERE, '../demo/notes-server.ts')], cwd };
}

export const DEV_USERS = [
  { id: 'alice', password: 'alice', roles: ['editor', 'admin'], groups: ['staff'] },
  { id: 'bob', password: 'bob', roles: ['viewer'], groups: ['staff'] },
];

export const DEV_SCOPES = ['notes:read', 'notes:write', 'notes:admin'];

/** The demo policy: reads for notes:read, writes for editors, deletes for alice with a fresh token. */
export function devServerPolicy(): Record<string, unknown> {
  return {
    auth: { required: true, scopes: ['notes:read'] },
    defaultTool: 'deny',
    tools: {
      list_notes: { scopes: ['notes:read'] },
      read_note: { scopes: ['notes:read'] },
      echo: { scopes: ['notes:read'] },
      fetch_page: { scopes: ['notes:read'] },
      read_file: { scopes: ['notes:read'] },
      write_note: { scopes: ['notes:write'], allow: { roles: ['editor'] }, rateLimit: '30/minute' },
      delete_note: { scopes: ['notes:admin'], allow: { subjects: ['alice'] } },
    },
  };
}

export function register(program: Command): void {
  program
    .command('dev')
    .description('Run the gateway, an embedded development authorization server and the demo upstream on localhost')
    .option('--port <port>', 'gateway port', '8080')
    .option('--as-port <port>', 'authorization server port', '8081')
    .option('--host <host>', 'listen address (loopback unless --unsafe-expose)', '127.0.0.1')
    .option('--state-dir <dir>', 'where keys, the audit trail and dev.json are kept', '.bastion')
    .option('--auto-login <user>', 'log this dev user in and consent automatically (headless clients); env BASTION_DEV_AUTO_LOGIN')
    .option('--unsafe-expose', 'allow a non-loopback listen address (anyone who reaches it can get tokens)')
    .action(async (opts: DevOptions) => {
      const stateDir = resolve(opts.stateDir);
      mkdirSync(stateDir, { recursive: true, mode: 0o700 });
      const host = opts.host;
      const hostInUrl = host.includes(':') ? `[${host}]` : host;
      const gatewayUrl = `http://${hostInUrl}:${Number(opts.port)}`;
      const mcpUrl = `${gatewayUrl}/mcp/notes`;
      const autoLogin = opts.autoLogin ?? process.env.BASTION_DEV_AUTO_LOGIN;

      // Loaded here only: production installs never load oidc-provider.
      const { startDevAuthServer } = await import('../authserver/index.js');
      const as = await startDevAuthServer({
        host,
        port: Number(opts.asPort),
        stateDir: join(stateDir, 'authserver'),
        resources: [{ resource: mcpUrl, scopes: DEV_SCOPES, name: 'notes' }],
        users: DEV_USERS,
        ...(autoLogin ? { autoLogin } : {}),
        ...(opts.unsafeExpose ? { unsafeExpose: true } : {}),
      });

      const config: ConfigInput = {
        listen: { host, port: Number(opts.port) },
        publicUrl: gatewayUrl,
        auth: { issuers: [{ issuer: as.issuer, discovery: true, typ: 'at+jwt' }] },
        servers: { notes: { stdio: { ...demoUpstream(), env: { NOTES_DIR: join(stateDir, 'notes') } }, ...devServerPolicy() } as never },
        audit: { sinks: [{ type: 'file', path: join(stateDir, 'audit.jsonl') }] } as never,
      };
      const loaded = parseConfig(config, '(bastion dev defaults)', stateDir);
      let gw;
      try {
        gw = await startGatewayFromConfig(loaded);
      } catch (err) {
        await as.close();
        throw err;
      }

      const facts = {
        gatewayUrl,
        mcpUrls: { notes: mcpUrl },
        mounts: { notes: mcpUrl },
        issuer: as.issuer,
        authorizationServerMetadata: as.metadataUrl,
        protectedResourceMetadata: `${gatewayUrl}/.well-known/oauth-protected-resource/mcp/notes`,
        scopes: DEV_SCOPES,
        users: DEV_USERS.map((u) => ({ id: u.id, password: u.password, roles: u.roles, groups: u.groups })),
        autoLogin: autoLogin ?? null,
        auditFile: join(stateDir, 'audit.jsonl'),
        stateDir: join(stateDir, 'authserver'),
        authServer: { issuer: as.issuer, stateDir: join(stateDir, 'authserver') },
      };
      writeFileSync(join(stateDir, 'dev.json'), JSON.stringify(facts, null, 2) + '\n', { mode: 0o600 });

      const out = process.stdout;
      out.write(`
mcp-bastion dev: gateway, authorization server and demo upstream are running (authentication required).

  MCP server (notes):       ${mcpUrl}
  Authorization server:     ${as.issuer}
  Resource metadata:        ${facts.protectedResourceMetadata}
  Dev users:                alice/alice (roles editor, admin), bob/bob (role viewer)
  Audit trail:              ${facts.auditFile}   (verify: npx bastion audit verify ${facts.auditFile})
  Facts for scripts:        ${join(stateDir, 'dev.json')}

Connect an MCP client (it discovers the authorization server from the 401, registers, and runs
OAuth 2.1 with PKCE; sign in as alice/alice):
  npx @modelcontextprotocol/inspector      then connect to ${mcpUrl} (Streamable HTTP)

Or with curl, using a token from the dev helper:
  TOKEN=$(npx bastion token --subject alice --scope "notes:read notes:write" --mount notes --raw)
  curl -s ${mcpUrl} -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
    -H 'Accept: application/json, text/event-stream' \\
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}' -i

Or from code (@modelcontextprotocol/sdk): new StreamableHTTPClientTransport(new URL('${mcpUrl}'), { authProvider })

Development defaults: in-memory state, keys in ${join(stateDir, 'authserver')}. Not for production: see docs/deployment.md.
Ctrl-C stops everything.
`);
      installShutdown(async () => {
        await gw.close();
        await as.close();
      });
    });
}
