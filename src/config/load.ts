/**
 * Load the configuration: read the YAML file, expand `${ENV}` references in string values,
 * validate against the schema, resolve relative paths against the file's folder, freeze.
 * Errors name the file and the key, and say how to fix it.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { BastionError } from '../errors.js';
import { configSchema, type Config, type ConfigInput } from './schema.js';

export interface LoadedConfig {
  readonly config: Readonly<Config>;
  /** Absolute path of the file, or undefined for an in-memory config. */
  readonly file: string | undefined;
  /** Folder relative paths are resolved against. */
  readonly baseDir: string;
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out === '' ? '(top level)' : out;
}

function describeIssues(issues: readonly z.core.$ZodIssue[], file: string): string {
  const lines: string[] = [];
  const walk = (list: readonly z.core.$ZodIssue[], prefix: readonly PropertyKey[]): void => {
    for (const i of list) {
      const path = [...prefix, ...i.path];
      if (i.code === 'invalid_union' && 'errors' in i && Array.isArray(i.errors) && i.errors.length > 0) {
        // Report the alternative that got furthest (fewest issues).
        const best = [...(i.errors as z.core.$ZodIssue[][])].sort((a, b) => a.length - b.length)[0]!;
        walk(best, path);
        continue;
      }
      if (i.code === 'invalid_key' && 'issues' in i && Array.isArray(i.issues)) {
        for (const inner of i.issues as z.core.$ZodIssue[]) lines.push(`  ${formatPath(path)}: invalid name: ${inner.message}`);
        continue;
      }
      if (i.code === 'unrecognized_keys' && 'keys' in i) {
        for (const k of i.keys as string[]) {
          lines.push(`  ${formatPath([...path, k])}: unknown key (check its spelling against schema/config.json)`);
        }
        continue;
      }
      lines.push(`  ${formatPath(path)}: ${i.message}`);
    }
  };
  walk(issues, []);
  return `Invalid configuration in ${file}:\n${lines.join('\n')}`;
}

const ENV_REF = /\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}/g;

function expandEnv(v: unknown, env: NodeJS.ProcessEnv, file: string, path: string[]): unknown {
  if (typeof v === 'string') {
    return v.replace(ENV_REF, (_m, name: string, fallback: string | undefined) => {
      const val = env[name];
      if (val !== undefined) return val;
      if (fallback !== undefined) return fallback;
      throw new BastionError(
        'ERR_BASTION_CONFIG_INVALID',
        `Invalid configuration in ${file}:\n  ${path.join('.')}: refers to environment variable ${name}, which is not set (set it, or write \${${name}:-default})`,
      );
    });
  }
  if (Array.isArray(v)) return v.map((x, i) => expandEnv(x, env, file, [...path, String(i)]));
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = expandEnv(x, env, file, [...path, k]);
    return out;
  }
  return v;
}

export function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v as object)) deepFreeze(x);
  }
  return v;
}

/** Validate an already-parsed object. `file` is used in messages only. */
export function parseConfig(input: unknown, file = '(inline config)', baseDir = process.cwd(), env = process.env): LoadedConfig {
  const expanded = expandEnv(input ?? {}, env, file, []);
  const result = configSchema.safeParse(expanded);
  if (!result.success) throw new BastionError('ERR_BASTION_CONFIG_INVALID', describeIssues(result.error.issues, file));
  const config = result.data;
  for (const s of Object.values(config.servers)) {
    if (s.stdio) s.stdio.cwd = resolve(baseDir, s.stdio.cwd ?? '.');
  }
  return { config: deepFreeze(config), file: file.startsWith('(') ? undefined : file, baseDir };
}

export function loadConfigFile(path: string, env = process.env): LoadedConfig {
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new BastionError(
      'ERR_BASTION_CONFIG_UNREADABLE',
      `Cannot read configuration file ${file}: ${code === 'ENOENT' ? 'it does not exist (check the path, or run `bastion dev` for the embedded defaults)' : String(code ?? err)}`,
    );
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    throw new BastionError('ERR_BASTION_CONFIG_INVALID', `Invalid YAML in ${file}: ${e.message}`);
  }
  return parseConfig(doc.toJS() as ConfigInput, file, dirname(file), env);
}
