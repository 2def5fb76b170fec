/**
 * Least-privilege spawn spec for a stdio upstream: the stdio connector calls
 * `buildChildSpawn(config.servers.NAME.stdio, deps)` and passes the result to
 * `child_process.spawn(command, args, options)`.
 *
 * What the child gets
 * - Environment: ONLY the base allowlist below (values taken from the gateway's environment
 *   when set), plus the names listed in `inheritEnv`, plus the explicit `env` map. Nothing
 *   else (no tokens, keys, NODE_OPTIONS, LD_PRELOAD, proxies...) is inherited.
 *     PATH      so the command and its interpreters resolve (default /usr/local/bin:/usr/bin:/bin)
 *     HOME      package runners (npx, uvx) need a cache folder; set `env.HOME` to move it
 *     LANG, LC_ALL, LC_CTYPE, TZ   text encoding and time zone
 * - Working directory: `cwd` (the loader resolves it against the config file's folder).
 * - Optional `uid`/`gid` (spawn options; libuv drops supplementary groups when switching).
 * - Resource limits with prlimit(1) from util-linux when it is on PATH, else a
 *   `/bin/sh -c 'ulimit ...; exec "$@"'` wrapper (fsize is then not applied):
 *     memoryMb -> RLIMIT_DATA (heap and private mappings; RLIMIT_AS would stop V8 from
 *                 reserving its code range, so Node children could not start under ~1 GiB)
 *     cpuSeconds -> RLIMIT_CPU, openFiles -> RLIMIT_NOFILE, processes -> RLIMIT_NPROC
 *     (per user; root ignores it, so pair it with `uid`), fileSizeMb -> RLIMIT_FSIZE.
 * - Optional bubblewrap sandbox (`sandbox.enabled`, needs `bwrap` on PATH): new user, PID,
 *   IPC, UTS, cgroup and (unless `network: true`) network namespaces, so the child has no
 *   route out; the whole filesystem read-only except `writablePaths`; a private empty /tmp;
 *   fresh /dev and /proc (a working directory under /tmp stays visible, read-only);
 *   `hiddenPaths` masked; `--new-session` (no terminal injection);
 *   `--die-with-parent`. The limits wrapper runs inside the sandbox.
 *   When bwrap is missing or cannot create namespaces here, `required: true` (default)
 *   refuses to build a spec (fail closed); `required: false` runs unsandboxed with a warning.
 */
import { spawnSync, type SpawnOptions } from 'node:child_process';
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { BastionError } from '../errors.js';
import type { ServerConfig } from '../config/schema.js';

export type StdioUpstreamConfig = NonNullable<ServerConfig['stdio']>;

/** Gateway environment variables every stdio child receives (when set in the gateway). */
export const BASE_ENV_ALLOWLIST = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TZ'] as const;
const DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin';

export interface ChildSpawnDeps {
  /** The gateway's environment (default process.env): the source of allowlisted variables. */
  gatewayEnv?: NodeJS.ProcessEnv;
  /** Folder relative writable/hidden paths resolve against (the config file's folder). */
  baseDir?: string;
  /** Server name, for messages. */
  server?: string;
  /** Find an executable on the gateway's PATH (injected in tests). */
  which?: (name: string) => string | undefined;
  /** Whether bwrap can create its namespaces here (default: run it once and cache). */
  probeBwrap?: (bwrapPath: string) => { ok: true } | { ok: false; reason: string };
}

export interface ChildSpawnSpec {
  command: string;
  args: string[];
  options: SpawnOptions & { env: Record<string, string>; cwd: string };
  /** True when the child runs inside bubblewrap. */
  sandboxed: boolean;
  /** How resource limits are applied. */
  limitsVia: 'prlimit' | 'ulimit' | 'none';
  /** Things an operator should know (logged by the connector at start-up). */
  warnings: string[];
}

export function whichOnPath(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const dir of (env.PATH ?? DEFAULT_PATH).split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      if (statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

const probeCache = new Map<string, { ok: true } | { ok: false; reason: string }>();

/** Run `bwrap` once with the namespaces the sandbox uses; cached per binary. */
export function probeBwrap(bwrapPath: string): { ok: true } | { ok: false; reason: string } {
  const hit = probeCache.get(bwrapPath);
  if (hit) return hit;
  const r = spawnSync(bwrapPath, ['--unshare-all', '--die-with-parent', '--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc', '--', 'true'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    timeout: 10_000,
    env: { PATH: DEFAULT_PATH },
  });
  const res: { ok: true } | { ok: false; reason: string } =
    r.status === 0
      ? { ok: true }
      : { ok: false, reason: (r.error?.message ?? String(r.stderr ?? '').trim().split('\n')[0] ?? '') || `exit status ${r.status}` };
  probeCache.set(bwrapPath, res);
  return res;
}

function configError(server: string, message: string): BastionError {
  return new BastionError('ERR_BASTION_CONFIG_INVALID', `servers.${server}.stdio: ${message}`);
}

/** The child's environment: allowlist + inheritEnv from the gateway, then the explicit map. */
export function childEnv(stdio: Pick<StdioUpstreamConfig, 'env' | 'inheritEnv'>, gatewayEnv: NodeJS.ProcessEnv): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of [...BASE_ENV_ALLOWLIST, ...(stdio.inheritEnv ?? [])]) {
    const v = gatewayEnv[name];
    if (v !== undefined) env[name] = v;
  }
  env.PATH ??= DEFAULT_PATH;
  Object.assign(env, stdio.env ?? {});
  return env;
}

const MiB = 1024 * 1024;

function prlimitArgs(l: NonNullable<StdioUpstreamConfig['limits']>): string[] {
  const a: string[] = [];
  if (l.memoryMb !== undefined) a.push(`--data=${l.memoryMb * MiB}`);
  if (l.cpuSeconds !== undefined) a.push(`--cpu=${l.cpuSeconds}`);
  if (l.openFiles !== undefined) a.push(`--nofile=${l.openFiles}`);
  if (l.processes !== undefined) a.push(`--nproc=${l.processes}`);
  if (l.fileSizeMb !== undefined) a.push(`--fsize=${l.fileSizeMb * MiB}`);
  return a;
}

/** POSIX sh script; values are integers from the schema, never user text. */
function ulimitScript(l: NonNullable<StdioUpstreamConfig['limits']>): string {
  const s: string[] = [];
  if (l.memoryMb !== undefined) s.push(`ulimit -d ${l.memoryMb * 1024}`);
  if (l.cpuSeconds !== undefined) s.push(`ulimit -t ${l.cpuSeconds}`);
  if (l.openFiles !== undefined) s.push(`ulimit -n ${l.openFiles}`);
  // bash spells the process limit -u, dash -p.
  if (l.processes !== undefined) s.push(`{ ulimit -u ${l.processes} 2>/dev/null || ulimit -p ${l.processes}; }`);
  return `${s.join(' && ')} && exec "$@"`;
}

function hasLimits(l: StdioUpstreamConfig['limits']): l is NonNullable<StdioUpstreamConfig['limits']> {
  return l !== undefined && Object.values(l).some((v) => v !== undefined);
}

/** Build the spawn spec of a least-privilege stdio upstream. Throws ERR_BASTION_CONFIG_INVALID. */
export function buildChildSpawn(stdio: StdioUpstreamConfig, deps: ChildSpawnDeps = {}): ChildSpawnSpec {
  const gatewayEnv = deps.gatewayEnv ?? process.env;
  const server = deps.server ?? 'NAME';
  const baseDir = deps.baseDir ?? process.cwd();
  const which = deps.which ?? ((n: string) => whichOnPath(n, gatewayEnv));
  const warnings: string[] = [];
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p));

  const env = childEnv(stdio, gatewayEnv);
  const cwd = abs(stdio.cwd ?? '.');
  let inner: string[] = [stdio.command, ...(stdio.args ?? [])];

  let limitsVia: ChildSpawnSpec['limitsVia'] = 'none';
  if (hasLimits(stdio.limits)) {
    const prlimit = which('prlimit');
    if (prlimit) {
      inner = [prlimit, ...prlimitArgs(stdio.limits), '--', ...inner];
      limitsVia = 'prlimit';
    } else {
      inner = ['/bin/sh', '-c', ulimitScript(stdio.limits), 'bastion-limits', ...inner];
      limitsVia = 'ulimit';
      if (stdio.limits.fileSizeMb !== undefined) warnings.push('limits.fileSizeMb is not applied without prlimit (install util-linux)');
    }
    if (stdio.limits.processes !== undefined && stdio.uid === undefined && (process.getuid?.() ?? 1) === 0) {
      warnings.push('limits.processes has no effect for a child running as root: set uid');
    }
  }

  let sandboxed = false;
  const sb = stdio.sandbox;
  if (sb?.enabled) {
    const bwrap = which('bwrap');
    const probe = bwrap ? (deps.probeBwrap ?? probeBwrap)(bwrap) : { ok: false as const, reason: 'bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)' };
    if (!probe.ok) {
      const why = `sandbox.enabled is true but bubblewrap cannot run here: ${probe.reason}`;
      if (sb.required) throw configError(server, `${why}. Install bubblewrap and allow unprivileged user namespaces, or set sandbox.required: false to run without it.`);
      warnings.push(`${why}; running WITHOUT the sandbox because sandbox.required is false`);
    } else {
      const a = ['--die-with-parent', '--new-session', '--unshare-all'];
      if (sb.network) a.push('--share-net');
      a.push('--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp');
      // The private /tmp hides the host's: keep what the child needs from there visible, read-only:
      // its working directory and the folders of the program and scripts it is started with.
      const underTmp = (p: string): boolean => p === '/tmp' || p.startsWith('/tmp/');
      const keep = new Set<string>();
      if (underTmp(cwd)) keep.add(cwd);
      for (const x of [stdio.command, ...(stdio.args ?? [])]) {
        if (!isAbsolute(x) || !underTmp(x)) continue;
        try {
          // The package the script belongs to (nearest package.json), so its imports resolve too.
          let dir = statSync(x).isDirectory() ? x : dirname(x);
          for (let d = dir; underTmp(d) && d !== '/tmp'; d = dirname(d)) {
            if (existsSync(join(d, 'package.json'))) {
              dir = d;
              break;
            }
          }
          keep.add(dir);
        } catch {
          /* not a path */
        }
      }
      for (const p of keep) a.push('--ro-bind', p, p);
      for (const p of sb.hiddenPaths.map(abs)) {
        let isDir: boolean;
        try {
          isDir = statSync(p).isDirectory();
        } catch {
          continue; // nothing there to hide
        }
        if (isDir) a.push('--tmpfs', p);
        else a.push('--ro-bind', '/dev/null', p);
      }
      for (const p of sb.writablePaths.map(abs)) {
        try {
          statSync(p);
        } catch {
          throw configError(server, `sandbox.writablePaths: ${p} does not exist (create it, or remove it from the list)`);
        }
        a.push('--bind', p, p);
      }
      a.push('--chdir', cwd, '--');
      inner = [bwrap!, ...a, ...inner];
      sandboxed = true;
    }
  }

  if (stdio.uid !== undefined && stdio.gid === undefined) warnings.push('uid is set without gid: the child keeps the gateway\'s primary group');

  const options: ChildSpawnSpec['options'] = { env, cwd, stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true };
  if (stdio.uid !== undefined) options.uid = stdio.uid;
  if (stdio.gid !== undefined) options.gid = stdio.gid;
  const [command, ...args] = inner as [string, ...string[]];
  return { command, args, options, sandboxed, limitsVia, warnings };
}
