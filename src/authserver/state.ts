/**
 * The development authorization server's local state folder: signing keys, cookie and CSRF
 * keys, and the private key of the `bastion token` helper client. Generated on first start,
 * kept with mode 0600 in a 0700 folder, and never part of the repository (`.bastion/` is
 * git-ignored).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, type JWK } from 'jose';

export interface AuthServerSecrets {
  /** Private signing keys (RS256 and ES256) in JWK form, as oidc-provider's `jwks` wants them. */
  jwks: { keys: JWK[] };
  /** Keys for oidc-provider's signed cookies (newest first). */
  cookieKeys: string[];
  /** Key for the consent and login forms' CSRF tokens. */
  csrfKey: string;
  /** The `bastion token` helper client's private key (private_key_jwt). */
  devClientKey: JWK;
}

/** The file `bastion token` reads to reach the running server (written on every start). */
export interface DevClientFile {
  issuer: string;
  clientId: string;
  redirectUri: string;
  /** Private JWK used for private_key_jwt at the token endpoint. */
  privateJwk: JWK;
  resources: { name: string; resource: string; scopes: string[] }[];
}

export const JWKS_FILE = 'jwks.json';
export const SECRETS_FILE = 'secrets.json';
export const DEV_CLIENT_FILE = 'dev-client.json';

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read ${path}: ${(err as Error).message}. Delete the file to have it generated again.`, {
      cause: err,
    });
  }
}

/** Writes a file with mode 0600 atomically (temporary file, then rename). */
export async function writePrivateFile(path: string, content: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomUUID()}.tmp`;
  await writeFile(tmp, content, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}

async function privateJwk(alg: 'RS256' | 'ES256'): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, alg, use: 'sig', kid: randomUUID() };
}

/** Loads the state folder's secrets, generating any that are missing. */
export async function loadOrCreateSecrets(stateDir: string): Promise<AuthServerSecrets> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await chmod(stateDir, 0o700);

  const jwksPath = join(stateDir, JWKS_FILE);
  let jwks = await readJson<{ keys: JWK[] }>(jwksPath);
  if (!jwks || !Array.isArray(jwks.keys) || jwks.keys.length === 0) {
    jwks = { keys: [await privateJwk('RS256'), await privateJwk('ES256')] };
    await writePrivateFile(jwksPath, `${JSON.stringify(jwks, null, 2)}\n`);
  } else {
    await chmod(jwksPath, 0o600);
  }

  const secretsPath = join(stateDir, SECRETS_FILE);
  let secrets = await readJson<Omit<AuthServerSecrets, 'jwks'>>(secretsPath);
  if (!secrets || !Array.isArray(secrets.cookieKeys) || !secrets.csrfKey || !secrets.devClientKey) {
    secrets = {
      cookieKeys: [randomBytes(32).toString('base64url')],
      csrfKey: randomBytes(32).toString('base64url'),
      devClientKey: await privateJwk('ES256'),
    };
    await writePrivateFile(secretsPath, `${JSON.stringify(secrets, null, 2)}\n`);
  } else {
    await chmod(secretsPath, 0o600);
  }
  return { jwks, ...secrets };
}

export async function writeDevClientFile(stateDir: string, file: DevClientFile): Promise<string> {
  const path = join(stateDir, DEV_CLIENT_FILE);
  await writePrivateFile(path, `${JSON.stringify(file, null, 2)}\n`);
  return path;
}

export async function readDevClientFile(stateDir: string): Promise<DevClientFile | undefined> {
  return readJson<DevClientFile>(join(stateDir, DEV_CLIENT_FILE));
}

/** The public half of a private JWK (drops d, p, q, dp, dq, qi). */
export function publicJwk(jwk: JWK): JWK {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, oth: _oth, ...pub } = jwk as JWK & { oth?: unknown };
  return pub;
}
