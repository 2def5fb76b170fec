/**
 * Process plumbing for the bench: start pinned processes, wait for readiness, and read
 * CPU time and memory of whole process trees from /proc (Linux). Where /proc or taskset is
 * missing the bench still runs; CPU and memory figures are then reported as null.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, readFileSync, readdirSync, closeSync } from 'node:fs';
import { request } from 'node:http';

let tasksetPath: string | null | undefined;
/** Absolute path of taskset, or null when it is not installed. */
export function taskset(): string | null {
  if (tasksetPath === undefined) {
    const r = spawnSync('taskset', ['-V'], { stdio: 'ignore' });
    tasksetPath = r.status === 0 ? 'taskset' : null;
  }
  return tasksetPath;
}

let clkTck: number | undefined;
function ticksPerSecond(): number {
  if (clkTck === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const n = Number(r.stdout?.trim());
    clkTck = Number.isFinite(n) && n > 0 ? n : 100;
  }
  return clkTck;
}

export const HAS_PROC = existsSync('/proc/self/stat');

/** Direct children of a process (all its threads' children), via /proc/PID/task/TID/children. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (text) for (const c of text.split(/\s+/)) out.push(Number(c));
    } catch {
      // thread ended meanwhile
    }
  }
  return out;
}

/** The process and all its descendants. */
export function processTree(root: number): number[] {
  const seen: number[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop() as number;
    if (seen.includes(pid)) continue;
    seen.push(pid);
    stack.push(...childrenOf(pid));
  }
  return seen;
}

/** User + system CPU time of one process (all threads), in microseconds; null if unreadable. */
export function cpuMicros(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and parentheses: fields resume after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    return ((utime + stime) * 1e6) / ticksPerSecond();
  } catch {
    return null;
  }
}

export interface NamedProcess {
  name: string;
  pid: number;
}

/** CPU µs of each named root process and, separately, of its descendants. */
export type CpuSnapshot = Map<string, Map<number, number>>;

export function cpuSnapshot(roots: NamedProcess[]): CpuSnapshot | null {
  if (!HAS_PROC) return null;
  const snap: CpuSnapshot = new Map();
  for (const root of roots) {
    const self = new Map<number, number>();
    const kids = new Map<number, number>();
    for (const pid of processTree(root.pid)) {
      const us = cpuMicros(pid);
      if (us !== null) (pid === root.pid ? self : kids).set(pid, us);
    }
    snap.set(root.name, self);
    snap.set(`${root.name}:children`, kids);
  }
  return snap;
}

/**
 * CPU µs spent between two snapshots, per group (`NAME` and `NAME:children`).
 * A process that appeared meanwhile counts from zero; one that ended meanwhile is lost
 * (its time is no longer readable), which only happens if a process under test crashed.
 */
export function cpuDelta(before: CpuSnapshot | null, after: CpuSnapshot | null): Record<string, number> | null {
  if (!before || !after) return null;
  const out: Record<string, number> = {};
  for (const [group, pids] of after) {
    const prev = before.get(group) ?? new Map<number, number>();
    let sum = 0;
    for (const [pid, us] of pids) sum += us - (prev.get(pid) ?? 0);
    if (group.endsWith(':children') && pids.size === 0) continue;
    out[group] = sum;
  }
  return out;
}

export interface Memory {
  rssKb: number;
}

/** VmRSS of one process in kB, or null. */
export function rssKb(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

export interface StartOptions {
  name: string;
  command: string;
  args: string[];
  cwd: string;
  /** CPU list for taskset (e.g. "0"); undefined = not pinned. */
  cpu?: string | undefined;
  /** Where the process's stderr (and stdout, unless readyLine) goes. */
  logFile: string;
  /** Wait for a JSON line {"ready":true,"port":N} on stdout. */
  readyLine?: boolean;
  /** Or poll this URL until it answers 200. */
  healthUrl?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface Started {
  name: string;
  pid: number;
  port: number | undefined;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Start a process (pinned with taskset when asked and available) and wait until it is ready. */
export async function startProcess(o: StartOptions): Promise<Started> {
  const ts = o.cpu !== undefined ? taskset() : null;
  const [cmd, args] = ts ? [ts, ['-c', o.cpu as string, o.command, ...o.args]] : [o.command, o.args];
  const log = openSync(o.logFile, 'a');
  const child = spawn(cmd, args, {
    cwd: o.cwd,
    env: o.env ?? process.env,
    stdio: ['ignore', o.readyLine ? 'pipe' : log, log],
  });
  closeSync(log);
  const exited = new Promise<string>((resolve) =>
    child.once('exit', (code, signal) => resolve(`${o.name} exited early (code ${code}, signal ${signal}); see ${o.logFile}`)),
  );
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await done;
    clearTimeout(timer);
  };
  const timeoutMs = o.timeoutMs ?? 20_000;
  let port: number | undefined;
  try {
    if (o.readyLine) {
      port = await Promise.race([
        readyPort(child),
        exited.then((m) => Promise.reject(new Error(m))),
        timeout(timeoutMs, `${o.name} printed no ready line within ${timeoutMs} ms; see ${o.logFile}`),
      ]);
    } else if (o.healthUrl) {
      await Promise.race([
        pollHealth(o.healthUrl, timeoutMs),
        exited.then((m) => Promise.reject(new Error(m))),
      ]);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  if (!child.pid) throw new Error(`${o.name}: no pid`);
  return { name: o.name, pid: child.pid, port, child, stop };
}

function timeout(ms: number, message: string): Promise<never> {
  return new Promise((_, reject) => setTimeout(() => reject(new Error(message)), ms).unref());
}

function readyPort(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    let buf = '';
    const stdout = child.stdout;
    if (!stdout) return;
    stdout.setEncoding('utf8');
    const onData = (chunk: string): void => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const msg = JSON.parse(line) as { ready?: boolean; port?: number };
          if (msg.ready && typeof msg.port === 'number') {
            // keep draining stdout so the child never blocks on a full pipe
            resolve(msg.port);
          }
        } catch {
          // not our line
        }
      }
    };
    stdout.on('data', onData);
  });
}

/** GET url until it answers 200 or the time runs out. */
export async function pollHealth(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    const status = await new Promise<number | string>((resolve) => {
      const req = request(url, { method: 'GET', timeout: 1_000 }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', (e) => resolve(e.message));
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.end();
    });
    if (status === 200) return;
    last = String(status);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} not ready within ${timeoutMs} ms (last: ${last})`);
}

/** A free TCP port on 127.0.0.1 (bound then released; a small race is acceptable for a bench). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
