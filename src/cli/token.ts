/**
 * `bastion token`: a development helper that obtains an access token for a dev user, scopes and
 * mount from the running embedded authorization server (`bastion dev`), and prints it with its
 * expiry. This is the one place mcp-bastion prints a token: on purpose, for curl and debugging.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';

interface DevJson {
  issuer?: string;
  stateDir?: string;
  authServer?: { issuer?: string; stateDir?: string };
  mounts?: Record<string, string> | { name?: string; url?: string; mcpUrl?: string }[];
}

async function readDevJson(path: string): Promise<DevJson | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as DevJson;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function mountsOf(dev: DevJson | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!dev?.mounts) return out;
  if (Array.isArray(dev.mounts)) {
    for (const m of dev.mounts) {
      const url = m.mcpUrl ?? m.url;
      if (m.name && url) out[m.name] = url;
    }
  } else {
    for (const [name, url] of Object.entries(dev.mounts)) if (typeof url === 'string') out[name] = url;
  }
  return out;
}

export function register(program: Command): void {
  program
    .command('token')
    .description('obtain a development access token from the embedded authorization server started by `bastion dev` (prints the token: for curl and debugging only)')
    .requiredOption('--subject <user>', 'dev user the token is for (its `sub`)')
    .requiredOption('--scope <scopes>', 'space-separated scopes, e.g. "notes:read notes:write"')
    .requiredOption('--mount <url|name>', 'the mount the token is for (its audience): MCP URL or mount name')
    .option('--issuer <url>', 'issuer of the running server (default: from .bastion/dev.json, then the state folder)')
    .option('--state-dir <dir>', 'the authorization server state folder', join('.bastion', 'authserver'))
    .option('--dev-json <file>', 'facts written by `bastion dev`', join('.bastion', 'dev.json'))
    .option('--raw', 'print only the token (for TOKEN=$(bastion token ...))')
    .option('--json', 'print a JSON object (access_token, token_type, expires_in, expires_at, scope, resource)')
    .action(
      async (opts: {
        subject: string;
        scope: string;
        mount: string;
        issuer?: string;
        stateDir: string;
        devJson: string;
        raw?: boolean;
        json?: boolean;
      }) => {
        const dev = await readDevJson(opts.devJson);
        const stateDir = opts.stateDir !== join('.bastion', 'authserver') ? opts.stateDir : (dev?.authServer?.stateDir ?? dev?.stateDir ?? opts.stateDir);
        // Loaded lazily, like everywhere else: production commands never load the dev server.
        const { readDevClientFile } = await import('../authserver/state.js');
        const { obtainDevToken, resolveMount } = await import('../authserver/dev-token.js');
        const client = await readDevClientFile(stateDir);
        if (!client) {
          throw new Error(`no development authorization server state in ${stateDir}: start it with \`bastion dev\` first (or pass --state-dir)`);
        }
        const issuer = opts.issuer ?? dev?.authServer?.issuer ?? dev?.issuer;
        const mount = resolveMount(client, opts.mount, mountsOf(dev));
        const token = await obtainDevToken({
          client,
          subject: opts.subject,
          scope: opts.scope,
          mount,
          ...(issuer ? { issuer } : {}),
        });
        const expiresAt = new Date(token.expiresAt * 1000).toISOString();
        if (opts.json) {
          process.stdout.write(
            `${JSON.stringify({
              access_token: token.accessToken,
              token_type: token.tokenType,
              expires_in: token.expiresIn,
              expires_at: expiresAt,
              scope: token.scope,
              resource: token.resource,
            })}\n`,
          );
        } else if (opts.raw) {
          process.stdout.write(`${token.accessToken}\n`);
        } else {
          process.stdout.write(
            `${token.accessToken}\n` +
              `# ${token.tokenType} token for ${opts.subject} at ${token.resource}, scope "${token.scope}", expires ${expiresAt} (in ${token.expiresIn} s)\n`,
          );
        }
      },
    );
}
