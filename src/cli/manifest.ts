/**
 * `bastion manifest sign --key KEY.pem --server NAME --manifest-version V` and `bastion manifest verify`:
 * Ed25519-signed manifests of a server's definitions (see src/integrity/manifest.ts).
 *
 * sign: definitions from `--from FILE` (a tools/list result, ...) or, with `--config`, the pins
 * of that server in the lockfile. Writes the JWS to `--out` (default NAME.manifest.jws).
 * verify: against `--key PUB.pem` (repeatable) or the server's `integrity.trustedKeys` in
 * `--config`; refuses a version lower than the lockfile's `manifestVersion` (downgrade); with
 * `--from`, says which live definitions it covers; `--accept` records the version in the lockfile.
 */
import { createPublicKey } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import { loadConfigFile } from '../config/load.js';
import { definitionHash } from '../integrity/canonical.js';
import { parseDefinitions } from '../integrity/definitions.js';
import { lockfilePathFor, readLockfile, writeLockfile } from '../integrity/lockfile.js';
import { coverageKey, privateKeyFromPem, publicKeyFromPem, signManifest, verifyManifest, type ManifestEntry } from '../integrity/manifest.js';
import { DEFINITION_KINDS } from '../integrity/types.js';

/** Where the command writes (tests replace it to capture output in-process). */
export const io = {
  out: (s: string): boolean => process.stdout.write(s),
  err: (s: string): boolean => process.stderr.write(s),
};

async function readDefs(file: string): Promise<ManifestEntry[]> {
  const set = parseDefinitions(JSON.parse(await readFile(file, 'utf8')) as unknown);
  if (typeof set === 'string') throw new Error(`${file}: ${set}`);
  const out: ManifestEntry[] = [];
  for (const kind of DEFINITION_KINDS) for (const d of set[kind]) if (typeof d.name === 'string') out.push({ kind, name: d.name, hash: definitionHash(kind, d) });
  return out;
}

function lockPathOf(configFile: string): string {
  try {
    const { config } = loadConfigFile(configFile);
    return lockfilePathFor(configFile, (config as { integrity?: { lockfile?: string } }).integrity?.lockfile);
  } catch {
    return lockfilePathFor(configFile);
  }
}

export function register(program: Command): void {
  const manifest = program.command('manifest').description('Ed25519-signed manifests of a server\'s tool definitions');

  manifest
    .command('sign')
    .description('sign a manifest of a server\'s definitions')
    .requiredOption('--key <file>', 'Ed25519 private key (PKCS#8 PEM)')
    .requiredOption('--server <name>', 'server (mount) name the manifest is for')
    .requiredOption('--manifest-version <version>', 'manifest version, dotted numbers (e.g. 1.4.0); must never go down')
    .option('--from <file>', 'definitions to sign (tools/list result, array of tools)')
    .option('--config <file>', 'sign the pins of --server from the lockfile beside this config instead')
    .option('--signer <id>', 'publisher id recorded in the manifest (default: the key\'s JWK thumbprint)')
    .option('--out <file>', 'where to write the JWS (default: NAME.manifest.jws; - for stdout)')
    .action(async (opts: { key: string; server: string; manifestVersion: string; from?: string; config?: string; signer?: string; out?: string }) => {
      let definitions: ManifestEntry[];
      if (opts.from) definitions = await readDefs(opts.from);
      else if (opts.config) {
        const lock = await readLockfile(lockPathOf(opts.config));
        definitions = Object.values(lock.servers[opts.server]?.pins ?? {}).map((p) => ({ kind: p.kind, name: p.name, hash: p.hash }));
      } else throw new Error('give the definitions with --from FILE, or --config FILE to sign the pinned ones');
      if (definitions.length === 0) throw new Error(`no definitions to sign for server "${opts.server}"`);
      const key = privateKeyFromPem(await readFile(opts.key, 'utf8'));
      const kid = await calculateJwkThumbprint(await exportJWK(createPublicKey(key)));
      const jws = await signManifest({ server: opts.server, version: opts.manifestVersion, signer: opts.signer ?? kid, definitions }, key, kid);
      const out = opts.out ?? `${opts.server}.manifest.jws`;
      if (out === '-') io.out(`${jws}\n`);
      else {
        await writeFile(out, `${jws}\n`);
        io.out(`signed ${definitions.length} definition(s) of ${opts.server} version ${opts.manifestVersion} → ${out}\n`);
      }
    });

  manifest
    .command('verify')
    .description('verify a manifest\'s signature, server and version (and, with --from, what it covers)')
    .argument('<file>', 'the manifest (JWS)')
    .requiredOption('--server <name>', 'server (mount) name')
    .option('--key <file...>', 'trusted Ed25519 public key(s), PEM')
    .option('--config <file>', 'use the server\'s integrity.trustedKeys and the lockfile\'s manifestVersion')
    .option('--from <file>', 'live definitions to check coverage of')
    .option('--accept', 'record the manifest version in the lockfile (downgrade protection)')
    .action(async (file: string, opts: { server: string; key?: string[]; config?: string; from?: string; accept?: boolean }) => {
      const pems: string[] = [];
      for (const k of opts.key ?? []) pems.push(await readFile(k, 'utf8'));
      let minVersion: string | undefined;
      let lockPath: string | undefined;
      if (opts.config) {
        const { config } = loadConfigFile(opts.config);
        const server = config.servers[opts.server];
        if (!server) throw new Error(`server "${opts.server}" is not in ${opts.config}`);
        const base = dirname(resolve(opts.config));
        for (const k of (server as { integrity?: { trustedKeys?: string[] } }).integrity?.trustedKeys ?? []) {
          pems.push(k.includes('-----BEGIN') ? k : await readFile(resolve(base, k), 'utf8'));
        }
        lockPath = lockPathOf(opts.config);
        minVersion = (await readLockfile(lockPath)).servers[opts.server]?.manifestVersion;
      }
      if (pems.length === 0) throw new Error('no trusted keys: pass --key PUB.pem or --config with servers.NAME.integrity.trustedKeys');
      const r = await verifyManifest(await readFile(file, 'utf8'), { server: opts.server, trustedKeys: pems.map(publicKeyFromPem), minVersion });
      if (!r.ok) {
        io.err(`manifest NOT valid (${r.failure}): ${r.message}\n`);
        process.exitCode = 1;
        return;
      }
      io.out(`manifest valid: server ${r.manifest.server}, version ${r.manifest.version}, signer ${r.manifest.signer}, ${r.manifest.definitions.length} definition(s), issued ${r.manifest.issuedAt}\n`);
      if (opts.from) {
        let uncovered = 0;
        for (const d of await readDefs(opts.from)) {
          const ok = r.covered.has(coverageKey(d.kind, d.name, d.hash));
          if (!ok) uncovered++;
          io.out(`  ${ok ? 'covered    ' : 'NOT covered'} ${d.kind} ${d.name}\n`);
        }
        if (uncovered > 0) process.exitCode = 1;
      }
      if (opts.accept) {
        if (!lockPath) throw new Error('--accept needs --config (the lockfile records the version)');
        const lock = await readLockfile(lockPath);
        const s = (lock.servers[opts.server] ??= { pins: {} });
        s.manifestVersion = r.manifest.version;
        await writeLockfile(lockPath, lock);
        io.out(`recorded manifest version ${r.manifest.version} in ${lockPath}\n`);
      }
    });
}
