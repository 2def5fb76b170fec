/**
 * The hash-chained record format of the file sink, shared by the writer and the verifier.
 *
 * One JSON object per line:
 *   {"seq":N,"prevHash":H(N-1),"event":{...},"hash":H(N)}
 *   {"seq":N,"prevHash":H(N-1),"checkpoint":{"records":N-1,"time":...,"final":bool,"keyId":...},"hash":H(N),"sig":...}
 * where H(N) = hex SHA-256 of the canonical JSON (RFC 8785 style) of {seq, prevHash, event|checkpoint}
 * and H(0) is 64 zeros. `sig` is Ed25519 over the ASCII of H(N) (base64url), present when a
 * checkpoint key is configured. Checkpoints are records of the chain too, so they cannot be
 * moved or removed unnoticed; the last record of a cleanly closed file is a `final` checkpoint.
 */
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { canonicalJson } from './canonical.js';

export const GENESIS_HASH = '0'.repeat(64);

export interface CheckpointBody {
  /** Records before this checkpoint (its own seq is records + 1). */
  records: number;
  time: string;
  final: boolean;
  keyId?: string;
}

export interface ChainRecord {
  seq: number;
  prevHash: string;
  event?: Record<string, unknown>;
  checkpoint?: CheckpointBody;
  hash: string;
  sig?: string;
}

export function recordHash(seq: number, prevHash: string, body: { event?: unknown; checkpoint?: unknown }): string {
  const obj: Record<string, unknown> = { seq, prevHash };
  if (body.event !== undefined) obj.event = body.event;
  if (body.checkpoint !== undefined) obj.checkpoint = body.checkpoint;
  return createHash('sha256').update(canonicalJson(obj)).digest('hex');
}

export function keyIdOf(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64url').slice(0, 16);
}

export function signHash(hash: string, privateKey: KeyObject): string {
  return sign(null, Buffer.from(hash, 'ascii'), privateKey).toString('base64url');
}

export function verifyHashSignature(hash: string, sig: string, publicKey: KeyObject): boolean {
  try {
    return verify(null, Buffer.from(hash, 'ascii'), publicKey, Buffer.from(sig, 'base64url'));
  } catch {
    return false;
  }
}

/** Load an Ed25519 private key (PKCS#8 PEM). Errors say what was wrong without echoing the key. */
export function loadSigningKey(path: string): KeyObject {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the audit checkpoint key ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'} (make one with \`bastion audit keygen --out ${path}\`)`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    throw new Error(`the audit checkpoint key ${path} is not a PEM private key (make one with \`bastion audit keygen\`)`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`the audit checkpoint key ${path} is ${key.asymmetricKeyType ?? 'not asymmetric'}; it must be Ed25519`);
  return key;
}

/** Load a public key (SPKI PEM), or derive it from a private key file. */
export function loadVerifyKey(path: string): KeyObject {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the public key ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  let key: KeyObject;
  try {
    key = pem.includes('PRIVATE KEY') ? createPublicKey(createPrivateKey(pem)) : createPublicKey(pem);
  } catch {
    throw new Error(`${path} is not a PEM public key (SPKI, "-----BEGIN PUBLIC KEY-----")`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${path} is ${key.asymmetricKeyType ?? 'not asymmetric'}; audit checkpoints use Ed25519`);
  return key;
}
