/**
 * Least-privilege stdio children, proven with real processes: the environment allowlist,
 * resource limits (prlimit and the ulimit fallback), uid, and the bubblewrap sandbox (no
 * network, read-only filesystem except listed paths, private /tmp, hidden paths).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serverSchema } from '../../src/config/schema.js';
import { buildChildSpawn, probeBwrap, whichOnPath, type ChildSpawnSpec, type StdioUpstreamConfig } from '../../src/upstream/child-process.js';
import { isBastionError } from '../../src/errors.js';

const NODE = process.execPath;
const GATEWAY_SECRET = 'gw-secret-value-should-never-reach-children';

function stdioConfig(input: Record<string, unknown>): StdioUpstreamConfig {
  return serverSchema.parse({ stdio: input }).stdio!;
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(spec: ChildSpawnSpec): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(spec.command, spec.args, { ...spec.options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', fail);
    child.on('close', (code, signal) => done({ code, signal, stdout, stderr }));
  });
}

/** A node one-liner as the child. */
const nodeChild = (script: string, extra: Record<string, unknown> = {}): StdioUpstreamConfig =>
  stdioConfig({ command: NODE, args: ['-e', script], ...extra });

const gatewayEnv = { ...process.env, GATEWAY_SECRET, AWS_SECRET_ACCESS_KEY: GATEWAY_SECRET, NODE_OPTIONS: '--require /nonexistent.js', EXTRA_OK: 'extra' };

test('the child gets only the allowlist, inheritEnv and its explicit env', async () => {
  const cfg = nodeChild('process.stdout.write(JSON.stringify(process.env))', { env: { NOTES_DIR: '/data/notes' }, inheritEnv: ['EXTRA_OK'] });
  const spec = buildChildSpawn(cfg, { gatewayEnv });
  const r = await run(spec);
  assert.equal(r.code, 0, r.stderr);
  const env = JSON.parse(r.stdout) as Record<string, string>;
  assert.equal(env.GATEWAY_SECRET, undefined, 'a gateway variable outside the allowlist is not inherited');
  assert.equal(env.AWS_SECRET_ACCESS_KEY, undefined);
  assert.equal(env.NODE_OPTIONS, undefined);
  assert.ok(!r.stdout.includes(GATEWAY_SECRET));
  assert.equal(env.PATH, process.env.PATH);
  assert.equal(env.NOTES_DIR, '/data/notes');
  assert.equal(env.EXTRA_OK, 'extra');
  for (const k of Object.keys(env)) {
    assert.ok(['PATH', 'HOME', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TZ', 'NOTES_DIR', 'EXTRA_OK'].includes(k), `unexpected variable ${k}`);
  }
});

test('explicit env wins over the allowlist; PATH has a default', () => {
  const spec = buildChildSpawn(stdioConfig({ command: 'x', env: { HOME: '/srv/home' } }), { gatewayEnv: { HOME: '/root' } });
  assert.equal(spec.options.env.HOME, '/srv/home');
  assert.equal(spec.options.env.PATH, '/usr/local/bin:/usr/bin:/bin');
});

const LIMITS = { memoryMb: 512, cpuSeconds: 30, openFiles: 64, processes: 200, fileSizeMb: 5 };
const readLimits = "process.stdout.write(require('fs').readFileSync('/proc/self/limits','utf8'))";

function limitLine(limits: string, name: string): string {
  const line = limits.split('\n').find((l) => l.startsWith(name));
  assert.ok(line, `no "${name}" in /proc/self/limits`);
  return line.replace(/\s+/g, ' ');
}

test('resource limits are applied with prlimit', { skip: whichOnPath('prlimit') ? false : 'prlimit (util-linux) is not installed' }, async () => {
  const spec = buildChildSpawn(nodeChild(readLimits, { limits: LIMITS }), { gatewayEnv });
  assert.equal(spec.limitsVia, 'prlimit');
  const r = await run(spec);
  assert.equal(r.code, 0, r.stderr);
  assert.match(limitLine(r.stdout, 'Max data size'), new RegExp(` ${512 * 1024 * 1024} ${512 * 1024 * 1024} bytes`));
  assert.match(limitLine(r.stdout, 'Max cpu time'), / 30 30 seconds/);
  assert.match(limitLine(r.stdout, 'Max open files'), / 64 64 files/);
  assert.match(limitLine(r.stdout, 'Max processes'), / 200 200 processes/);
  assert.match(limitLine(r.stdout, 'Max file size'), new RegExp(` ${5 * 1024 * 1024} ${5 * 1024 * 1024} bytes`));
});

test('without prlimit, a sh ulimit wrapper applies the limits', async () => {
  const which = (n: string): string | undefined => (n === 'prlimit' ? undefined : whichOnPath(n));
  const spec = buildChildSpawn(nodeChild(readLimits, { limits: LIMITS }), { gatewayEnv, which });
  assert.equal(spec.limitsVia, 'ulimit');
  assert.equal(spec.command, '/bin/sh');
  assert.ok(spec.warnings.some((w) => w.includes('fileSizeMb')));
  const r = await run(spec);
  assert.equal(r.code, 0, r.stderr);
  assert.match(limitLine(r.stdout, 'Max data size'), new RegExp(` ${512 * 1024 * 1024} ${512 * 1024 * 1024} bytes`));
  assert.match(limitLine(r.stdout, 'Max cpu time'), / 30 30 seconds/);
  assert.match(limitLine(r.stdout, 'Max open files'), / 64 64 files/);
  assert.match(limitLine(r.stdout, 'Max processes'), / 200 200 processes/);
});

test('a child over its open-files limit cannot open more', { skip: whichOnPath('prlimit') ? false : 'prlimit (util-linux) is not installed' }, async () => {
  const script = "const fs=require('fs');let n=0;try{for(;;){fs.openSync('/dev/null','r');n++}}catch(e){process.stdout.write(e.code+' '+n)}";
  const r = await run(buildChildSpawn(nodeChild(script, { limits: { openFiles: 40 } }), { gatewayEnv }));
  const [code, n] = r.stdout.split(' ');
  assert.equal(code, 'EMFILE');
  assert.ok(Number(n) < 40, `opened ${n} files under a limit of 40`);
});

test('a child that uses up its CPU time is killed', { skip: whichOnPath('prlimit') ? false : 'prlimit (util-linux) is not installed' }, async () => {
  const r = await run(buildChildSpawn(nodeChild('for(;;){}', { limits: { cpuSeconds: 1 } }), { gatewayEnv }));
  assert.ok(r.signal === 'SIGKILL' || r.signal === 'SIGXCPU', `ended with code ${r.code}, signal ${r.signal}`);
});

test('a child over its memory limit cannot grow past it', { skip: whichOnPath('prlimit') ? false : 'prlimit (util-linux) is not installed' }, async () => {
  // Each chunk is a distinct 16 MiB buffer kept alive: 24 of them are 384 MiB.
  const script = "const k=[];for(let i=0;i<24;i++){k.push(Buffer.alloc(16*1024*1024,i))}process.stdout.write('grew to '+k.length*16+' MiB')";
  const unlimited = await run(buildChildSpawn(nodeChild(script), { gatewayEnv }));
  assert.equal(unlimited.stdout, 'grew to 384 MiB', 'control: without a limit the allocation succeeds');
  const r = await run(buildChildSpawn(nodeChild(script, { limits: { memoryMb: 128 } }), { gatewayEnv }));
  assert.notEqual(r.code, 0);
  assert.equal(r.stdout, '');
});

const isRoot = process.getuid?.() === 0;
test('uid/gid: the child runs as the configured user', { skip: isRoot ? false : 'switching users needs the test to run as root' }, async () => {
  const r = await run(buildChildSpawn(nodeChild('process.stdout.write(process.getuid()+":"+process.getgid())', { uid: 65534, gid: 65534 }), { gatewayEnv }));
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '65534:65534');
});

// ---- bubblewrap sandbox ---------------------------------------------------------------

const bwrap = whichOnPath('bwrap');
const bwrapProbe = bwrap ? probeBwrap(bwrap) : undefined;
const noSandbox = !bwrap
  ? 'bwrap is not installed (apt-get install bubblewrap)'
  : bwrapProbe && !bwrapProbe.ok
    ? `bwrap cannot create namespaces in this environment: ${bwrapProbe.reason}`
    : false;

let listener: Server;
let port = 0;
before(async () => {
  listener = createServer((s) => {
    s.on('error', () => undefined);
    s.end('hello');
  });
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
  port = (listener.address() as AddressInfo).port;
});
after(() => new Promise<void>((r) => listener.close(() => r())));

const connectScript = (p: number): string =>
  `const s=require('net').connect(${p},'127.0.0.1');s.on('connect',()=>{process.stdout.write('connected');s.destroy()});s.on('error',e=>process.stdout.write('error '+e.code))`;

test('control: without the sandbox the child can reach a socket on the host', async () => {
  const r = await run(buildChildSpawn(nodeChild(connectScript(port)), { gatewayEnv }));
  assert.equal(r.stdout, 'connected');
});

test('sandbox: no network (cannot connect to the host, cannot reach out)', { skip: noSandbox }, async () => {
  const spec = buildChildSpawn(nodeChild(connectScript(port), { sandbox: { enabled: true } }), { gatewayEnv });
  assert.equal(spec.sandboxed, true);
  const r = await run(spec);
  assert.match(r.stdout, /^error E(CONNREFUSED|NETUNREACH|ACCES|PERM)$/, r.stderr);
  const out = await run(
    buildChildSpawn(
      nodeChild("require('net').connect(443,'1.1.1.1').on('error',e=>process.stdout.write(e.code)).on('connect',()=>process.stdout.write('connected'))", { sandbox: { enabled: true } }),
      { gatewayEnv },
    ),
  );
  assert.notEqual(out.stdout, 'connected');
  assert.match(out.stdout, /^E(NETUNREACH|CONNREFUSED|ACCES|PERM|HOSTUNREACH)$/);
});

test('sandbox with network: true keeps the network', { skip: noSandbox }, async () => {
  const r = await run(buildChildSpawn(nodeChild(connectScript(port), { sandbox: { enabled: true, network: true } }), { gatewayEnv }));
  assert.equal(r.stdout, 'connected', r.stderr);
});

test('sandbox: writes only to writablePaths; /tmp is private; hidden paths cannot be read', { skip: noSandbox }, async () => {
  const writable = mkdtempSync(join(tmpdir(), 'sb-rw-'));
  const readonly = mkdtempSync(join(tmpdir(), 'sb-ro-'));
  const secrets = mkdtempSync(join(tmpdir(), 'sb-secret-'));
  writeFileSync(join(readonly, 'visible.txt'), 'visible');
  writeFileSync(join(secrets, 'key'), GATEWAY_SECRET);
  const marker = `bastion-private-tmp-${process.pid}`;
  const script = `
    const fs = require('fs');
    const out = {};
    const tryWrite = (p) => { try { fs.writeFileSync(p, 'x'); return 'ok'; } catch (e) { return e.code; } };
    const tryRead = (p) => { try { return fs.readFileSync(p, 'utf8'); } catch (e) { return e.code; } };
    out.writable = tryWrite(${JSON.stringify(join(writable, 'out.txt'))});
    out.readonly = tryWrite(${JSON.stringify(join(readonly, 'nope.txt'))});
    out.etc = tryWrite('/etc/bastion-sandbox-test');
    out.tmp = tryWrite('/tmp/${marker}');
    out.read = tryRead(${JSON.stringify(join(readonly, 'visible.txt'))});
    out.hidden = tryRead(${JSON.stringify(join(secrets, 'key'))});
    process.stdout.write(JSON.stringify(out));
  `;
  const spec = buildChildSpawn(nodeChild(script, { cwd: readonly, sandbox: { enabled: true, writablePaths: [writable], hiddenPaths: [secrets] } }), { gatewayEnv });
  const r = await run(spec);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Record<string, string>;
  assert.equal(out.writable, 'ok');
  assert.equal(readFileSync(join(writable, 'out.txt'), 'utf8'), 'x');
  assert.equal(out.readonly, 'EROFS');
  assert.equal(out.etc, 'EROFS');
  assert.equal(existsSync('/etc/bastion-sandbox-test'), false);
  assert.equal(out.read, 'visible', 'the rest of the filesystem stays readable');
  assert.equal(out.tmp, 'ok');
  assert.equal(existsSync(`/tmp/${marker}`), false, "the child's /tmp is its own");
  assert.equal(out.hidden, 'ENOENT', 'a hidden folder is an empty tmpfs');
  assert.ok(!r.stdout.includes(GATEWAY_SECRET));
});

test('sandbox + limits: the limits wrapper runs inside the sandbox', { skip: noSandbox || (whichOnPath('prlimit') ? false : 'prlimit missing') }, async () => {
  const spec = buildChildSpawn(nodeChild(readLimits, { limits: { openFiles: 50 }, sandbox: { enabled: true } }), { gatewayEnv });
  assert.equal(spec.command, bwrap);
  assert.equal(spec.sandboxed, true);
  assert.equal(spec.limitsVia, 'prlimit');
  const r = await run(spec);
  assert.equal(r.code, 0, r.stderr);
  assert.match(limitLine(r.stdout, 'Max open files'), / 50 50 files/);
});

test('sandbox required but bwrap unavailable: refuses to start (fail closed) and says how to fix it', () => {
  const which = (n: string): string | undefined => (n === 'bwrap' ? undefined : whichOnPath(n));
  let caught: unknown;
  try {
    buildChildSpawn(stdioConfig({ command: 'node', sandbox: { enabled: true } }), { gatewayEnv, which, server: 'notes' });
  } catch (err) {
    caught = err;
  }
  assert.ok(isBastionError(caught));
  assert.equal(caught.code, 'ERR_BASTION_CONFIG_INVALID');
  assert.match(caught.message, /servers\.notes\.stdio: sandbox\.enabled is true but bubblewrap cannot run here: bwrap is not installed .*apt-get install bubblewrap/);

  const failingProbe = (): { ok: false; reason: string } => ({ ok: false, reason: 'No permissions to create new namespace' });
  assert.throws(() => buildChildSpawn(stdioConfig({ command: 'node', sandbox: { enabled: true } }), { gatewayEnv, which: () => '/usr/bin/bwrap', probeBwrap: failingProbe }), /No permissions/);
});

test('sandbox not required and bwrap unavailable: runs unsandboxed with a warning', () => {
  const which = (n: string): string | undefined => (n === 'bwrap' ? undefined : whichOnPath(n));
  const spec = buildChildSpawn(stdioConfig({ command: 'node', sandbox: { enabled: true, required: false } }), { gatewayEnv, which });
  assert.equal(spec.sandboxed, false);
  assert.equal(spec.command, 'node');
  assert.ok(spec.warnings.some((w) => /WITHOUT the sandbox/.test(w)));
});

test('sandbox: a writable path that does not exist is a config error', { skip: noSandbox }, () => {
  assert.throws(
    () => buildChildSpawn(stdioConfig({ command: 'node', sandbox: { enabled: true, writablePaths: ['/nonexistent/bastion'] } }), { gatewayEnv, server: 'x' }),
    /servers\.x\.stdio: sandbox\.writablePaths: \/nonexistent\/bastion does not exist/,
  );
});
