/**
 * `bastion.lock.json`: the reviewable record of approved definitions, beside the config file.
 *
 * Format (lockfileVersion 1), written with sorted keys and 2-space indent so diffs in pull
 * requests are stable:
 * {
 *   "lockfileVersion": 1,
 *   "servers": {
 *     "NAME": {
 *       "manifestVersion": "1.4.0",            // optional: highest signed manifest accepted
 *       "pins": {
 *         "tool:read_file": { "kind": "tool", "name": "read_file", "hash": "sha256:…",
 *                             "definition": { …identity fields… },
 *                             "approvedAt": "2026-…Z", "approvedBy": "alice@host" }
 *       }
 *     }
 *   }
 * }
 * Parsing is strict: a lockfile that does not match fails closed with a message naming the key.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { BastionError } from '../errors.js';
import { canonicalize, definitionHash } from './canonical.js';
import { DEFINITION_KINDS, pinKey, type DefinitionKind, type Lockfile, type LockfileServer, type Pin } from './types.js';

export const LOCKFILE_NAME = 'bastion.lock.json';

export function emptyLockfile(): Lockfile {
  return { lockfileVersion: 1, servers: {} };
}

/** Where the lockfile of a config file lives (beside it), unless a path is configured. */
export function lockfilePathFor(configFile: string, configured?: string): string {
  const dir = dirname(resolve(configFile));
  return configured ? resolve(dir, configured) : join(dir, LOCKFILE_NAME);
}

function bad(file: string, where: string, what: string): never {
  throw new BastionError('ERR_BASTION_CONFIG_INVALID', `Invalid lockfile ${file}: ${where}: ${what} (fix or delete the entry; \`bastion pin list\` shows what is pinned)`);
}

function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Validate a parsed lockfile. Hashes are recomputed: a hand-edited definition cannot keep an old hash. */
export function parseLockfile(value: unknown, file = LOCKFILE_NAME): Lockfile {
  if (!isObj(value)) bad(file, '(top level)', 'must be an object');
  if (value.lockfileVersion !== 1) bad(file, 'lockfileVersion', `unsupported version ${JSON.stringify(value.lockfileVersion)} (this gateway reads version 1)`);
  if (!isObj(value.servers)) bad(file, 'servers', 'must be an object');
  const out: Lockfile = { lockfileVersion: 1, servers: {} };
  for (const [server, s] of Object.entries(value.servers)) {
    if (!isObj(s)) bad(file, `servers.${server}`, 'must be an object');
    if (!isObj(s.pins)) bad(file, `servers.${server}.pins`, 'must be an object');
    const entry: LockfileServer = { pins: {} };
    if (s.manifestVersion !== undefined) {
      if (typeof s.manifestVersion !== 'string') bad(file, `servers.${server}.manifestVersion`, 'must be a string');
      entry.manifestVersion = s.manifestVersion;
    }
    for (const [key, p] of Object.entries(s.pins)) {
      const where = `servers.${server}.pins.${key}`;
      if (!isObj(p)) bad(file, where, 'must be an object');
      if (!DEFINITION_KINDS.includes(p.kind as DefinitionKind)) bad(file, `${where}.kind`, `must be one of ${DEFINITION_KINDS.join(', ')}`);
      if (typeof p.name !== 'string' || p.name.length === 0) bad(file, `${where}.name`, 'must be a non-empty string');
      if (key !== pinKey(p.kind as DefinitionKind, p.name)) bad(file, where, `key must be "${pinKey(p.kind as DefinitionKind, p.name)}"`);
      if (!isObj(p.definition)) bad(file, `${where}.definition`, 'must be an object');
      if (typeof p.approvedAt !== 'string' || typeof p.approvedBy !== 'string') bad(file, where, 'approvedAt and approvedBy must be strings');
      const hash = definitionHash(p.kind as DefinitionKind, p.definition);
      if (p.hash !== hash) bad(file, `${where}.hash`, `does not match the pinned definition (expected ${hash}); re-approve it with \`bastion pin approve\``);
      entry.pins[key] = { kind: p.kind as DefinitionKind, name: p.name, hash, definition: p.definition, approvedAt: p.approvedAt, approvedBy: p.approvedBy };
    }
    out.servers[server] = entry;
  }
  return out;
}

/** Stable text: sorted keys everywhere, 2-space indent, trailing newline. */
export function serializeLockfile(lock: Lockfile): string {
  return `${JSON.stringify(JSON.parse(canonicalize(lock)) as unknown, null, 2)}\n`;
}

/** Read a lockfile; a missing file is an empty lockfile. */
export function readLockfileSync(path: string): Lockfile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyLockfile();
    throw new BastionError('ERR_BASTION_CONFIG_UNREADABLE', `Cannot read lockfile ${path}: ${String((err as NodeJS.ErrnoException).code ?? err)}`);
  }
  return parseText(text, path);
}

export async function readLockfile(path: string): Promise<Lockfile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyLockfile();
    throw new BastionError('ERR_BASTION_CONFIG_UNREADABLE', `Cannot read lockfile ${path}: ${String((err as NodeJS.ErrnoException).code ?? err)}`);
  }
  return parseText(text, path);
}

function parseText(text: string, path: string): Lockfile {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new BastionError('ERR_BASTION_CONFIG_INVALID', `Invalid lockfile ${path}: not JSON (${(err as Error).message})`);
  }
  return parseLockfile(v, path);
}

/** Write atomically (temp file + rename) so a reader never sees half a lockfile. */
export async function writeLockfile(path: string, lock: Lockfile): Promise<void> {
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  await writeFile(tmp, serializeLockfile(lock), { mode: 0o644 });
  await rename(tmp, path);
}

/** Returns a new lockfile with the pins set (same key replaced). */
export function withPins(lock: Lockfile, server: string, pins: readonly Pin[]): Lockfile {
  const next = structuredClone(lock);
  const s = (next.servers[server] ??= { pins: {} });
  for (const p of pins) s.pins[pinKey(p.kind, p.name)] = p;
  return next;
}

export function withoutPins(lock: Lockfile, server: string, keys: ReadonlyArray<{ kind: DefinitionKind; name: string }>): Lockfile {
  const next = structuredClone(lock);
  const s = next.servers[server];
  if (s) for (const k of keys) delete s.pins[pinKey(k.kind, k.name)];
  return next;
}
