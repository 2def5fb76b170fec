/**
 * `bastion token` as a real process against a running development authorization server.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { register } from '../../src/cli/token.js';
import { startDevAuthServer, type DevAuthServer } from '../../src/authserver/index.js';
import { tempDir } from './helpers.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NOTES = 'http://127.0.0.1:8080/mcp/notes';
const FILES = 'http://127.0.0.1:8080/mcp/files';

function bastion(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), ...args],
      { cwd: ROOT, env: { ...process.env, ...env }, timeout: 60_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

/** The same command in-process (fast): stdout captured, errors thrown. */
async function inProcess(args: string[]): Promise<string> {
  const program = new Command().exitOverride();
  register(program);
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  try {
    await program.parseAsync(args, { from: 'user' });
  } finally {
    process.stdout.write = write;
  }
  return out;
}

describe('bastion token', () => {
  let as: DevAuthServer;
  let dir: string;
  let cleanup: () => Promise<void>;

  before(async () => {
    const tmp = await tempDir('bastion-token-');
    dir = tmp.dir;
    cleanup = tmp.cleanup;
    as = await startDevAuthServer({
      stateDir: join(dir, 'authserver'),
      resources: [
        { resource: NOTES, scopes: ['notes:read', 'notes:write'] },
        { resource: FILES, scopes: ['files:read'], name: 'docs' },
      ],
      users: [{ id: 'alice', roles: ['admin'], groups: ['ops'] }],
      // No auto-login: the helper must work without it, for its own client only.
    });
  });
  after(async () => {
    await as?.close();
    await cleanup?.();
  });

  test('prints a token for the subject, scopes and mount, with its expiry', async () => {
    const r = await bastion(['token', '--subject', 'alice', '--scope', 'notes:read notes:write', '--mount', 'notes', '--state-dir', join(dir, 'authserver'), '--dev-json', join(dir, 'none.json')]);
    assert.equal(r.code, 0, r.stderr);
    const [token, info] = r.stdout.trim().split('\n');
    assert.match(info!, /expires \d{4}-\d\d-\d\dT.*Z \(in 600 s\)/);
    assert.match(info!, /scope "notes:read notes:write"/);
    const { payload, protectedHeader } = await jwtVerify(token!, createRemoteJWKSet(new URL(as.jwksUri)), { issuer: as.issuer, audience: NOTES });
    assert.equal(protectedHeader.typ, 'at+jwt');
    assert.equal(payload.sub, 'alice');
    assert.equal(payload.scope, 'notes:read notes:write');
    assert.deepEqual(payload.roles, ['admin']);
    assert.deepEqual(payload.groups, ['ops']);
  });

  test('--json, a mount URL, a named mount, and the issuer from dev.json', async () => {
    const devJson = join(dir, 'dev.json');
    await writeFile(devJson, JSON.stringify({ issuer: as.issuer }));
    const out = JSON.parse(
      await inProcess(['token', '--subject', 'alice', '--scope', 'files:read notes:read', '--mount', 'docs', '--state-dir', join(dir, 'authserver'), '--dev-json', devJson, '--json']),
    ) as { access_token: string; expires_in: number; scope: string; resource: string };
    assert.equal(out.resource, FILES);
    assert.equal(out.scope, 'files:read', 'scopes of other mounts are not granted');
    assert.equal(out.expires_in, 600);
    const raw = await inProcess(['token', '--subject', 'alice', '--scope', 'notes:read', '--mount', NOTES, '--state-dir', join(dir, 'authserver'), '--dev-json', devJson, '--raw']);
    assert.equal(raw.trim().split('\n').length, 1);
    const { payload } = await jwtVerify(raw.trim(), createRemoteJWKSet(new URL(as.jwksUri)), { issuer: as.issuer, audience: NOTES });
    assert.equal(payload.sub, 'alice');
  });

  test('an unknown subject fails as a process: non-zero exit, a message, no token', async () => {
    const unknownUser = await bastion(['token', '--subject', 'mallory', '--scope', 'notes:read', '--mount', 'notes', '--state-dir', join(dir, 'authserver'), '--dev-json', join(dir, 'none.json')]);
    assert.notEqual(unknownUser.code, 0);
    assert.match(unknownUser.stderr, /login_required.*"mallory" a dev user/);
    assert.equal(unknownUser.stdout, '');
  });

  test('an unknown mount or a missing state folder fail with a message saying what to do', async () => {
    await assert.rejects(
      inProcess(['token', '--subject', 'alice', '--scope', 'notes:read', '--mount', 'nope', '--state-dir', join(dir, 'authserver'), '--dev-json', join(dir, 'none.json')]),
      /unknown mount "nope": use a mount URL or one of notes, docs/,
    );
    await assert.rejects(
      inProcess(['token', '--subject', 'alice', '--scope', 'notes:read', '--mount', 'notes', '--state-dir', join(dir, 'missing'), '--dev-json', join(dir, 'none.json')]),
      /start it with `bastion dev` first/,
    );
  });

  test('a web page cannot start a bastion-cli sign-in: its requests must be pushed (PAR, authenticated)', async () => {
    const url = new URL(`${as.issuer}/auth`);
    url.search = new URLSearchParams({
      client_id: 'bastion-cli',
      response_type: 'code',
      redirect_uri: 'http://127.0.0.1/bastion-token/callback',
      scope: 'notes:read',
      resource: NOTES,
      login_hint: 'alice',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
    }).toString();
    const res = await fetch(url, { redirect: 'manual' });
    const location = new URL(res.headers.get('location') ?? 'http://none/', url);
    assert.equal(location.searchParams.get('code'), null);
    assert.equal(location.searchParams.get('error'), 'invalid_request');
    assert.match(location.searchParams.get('error_description') ?? '', /[Pp]ushed/);
    assert.equal(res.headers.getSetCookie().some((c) => c.startsWith('_session=')), false, 'no session is created');
  });

  test('without the state-folder key, the helper client cannot redeem a code (private_key_jwt)', async () => {
    const res = await fetch(as.tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code: 'x', redirect_uri: 'http://127.0.0.1/bastion-token/callback', code_verifier: 'y'.repeat(43), client_id: 'bastion-cli' }),
    });
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { error: string }).error, 'invalid_client');
  });
});
