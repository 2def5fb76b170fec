/**
 * `bastion revoke | sessions | quarantine | release` as real processes against a running
 * gateway: they find the admin listener and its token from the config file.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { loadConfigFile } from '../../src/config/load.js';
import { startGatewayFromConfig, type FullGateway } from '../../src/gateway.js';
import { ROOT, silentLogger } from '../helpers/gateway.js';
import { startIssuer, type TestIssuer } from '../identity/fixtures.js';
import { freePort } from '../stores/helpers.js';
import { base, notesClient, notesConfig } from './fixture.js';

function bastion(args: string[], env: NodeJS.ProcessEnv, stdin?: string): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, ['--import', 'tsx', resolve(ROOT, 'src/cli/main.ts'), ...args], { cwd: ROOT, env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => done({ code, out, err }));
    child.stdin.end(stdin ?? '');
  });
}

describe('containment CLI', () => {
  let issuer: TestIssuer;
  let gw: FullGateway;
  let dir: string;
  let file: string;
  const env = { BASTION_CLI_ADMIN_TOKEN: 'cli-admin-token-0123456789' };

  before(async () => {
    process.env.BASTION_CLI_ADMIN_TOKEN = env.BASTION_CLI_ADMIN_TOKEN;
    issuer = await startIssuer();
    dir = mkdtempSync(join(tmpdir(), 'bastion-cli-admin-'));
    file = join(dir, 'bastion.yaml');
    writeFileSync(file, stringify(notesConfig(issuer, { admin: { listen: { host: '127.0.0.1', port: await freePort() }, token: { env: 'BASTION_CLI_ADMIN_TOKEN' } } })));
    gw = await startGatewayFromConfig(loadConfigFile(file), { logger: silentLogger() });
  });
  after(async () => {
    await gw?.close();
    await issuer?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('quarantine and release a tool; revoke a token read from stdin; list and end sessions', async () => {
    const c = await notesClient(base(gw), issuer, { sub: 'cli-user' });
    const q = await bastion(['quarantine', '--config', file, '--server', 'notes', '--tool', 'echo', '--reason', 'test'], env);
    assert.equal(q.code, 0, q.err);
    assert.equal(JSON.parse(q.out).quarantined.tool, 'echo');
    assert.ok(!(await c.list()).names.includes('echo'));
    const r = await bastion(['release', '--config', file, '--server', 'notes', '--tool', 'echo'], env);
    assert.equal(r.code, 0, r.err);
    assert.ok((await c.list()).names.includes('echo'));

    const s = await bastion(['sessions', 'list', '--config', file], env);
    assert.equal(s.code, 0, s.err);
    assert.ok(JSON.parse(s.out).sessions.some((x: { id: string; subject: string }) => x.id === c.sid && x.subject === 'cli-user'));

    const v = await bastion(['revoke', '--config', file, '--token', '-'], env, `${c.token}\n`);
    assert.equal(v.code, 0, v.err);
    assert.ok(!v.out.includes(c.token), 'the token is not echoed');
    assert.equal((await c.list()).status, 401);

    const other = await notesClient(base(gw), issuer, { sub: 'cli-other' });
    const e = await bastion(['sessions', 'end', '--config', file, '--subject', 'cli-other'], env);
    assert.equal(e.code, 0, e.err);
    assert.equal(JSON.parse(e.out).ended, 1);
    assert.equal((await other.list()).status, 404);
  });

  test('errors: wrong admin token, no selector, no admin listener in the config', async () => {
    const bad = await bastion(['sessions', 'list', '--config', file], { BASTION_CLI_ADMIN_TOKEN: 'wrong' });
    assert.equal(bad.code, 1);
    assert.match(bad.err, /answered 401/);
    const none = await bastion(['revoke', '--config', file], env);
    assert.equal(none.code, 2);
    assert.match(none.err, /exactly one of/);
    const plain = join(dir, 'plain.yaml');
    writeFileSync(plain, stringify(notesConfig(issuer)));
    const noAdmin = await bastion(['sessions', 'list', '--config', plain], env);
    assert.equal(noAdmin.code, 1);
    assert.match(noAdmin.err, /no admin listener/);
  });
});
