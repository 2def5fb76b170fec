/**
 * Check a hash-chained audit file: every record's hash, the chain of prevHash links, the
 * sequence numbers, the checkpoint signatures (with a public key), and that the file ends with
 * a final checkpoint (a cleanly closed file). Reports the FIRST bad record by line and seq.
 */
import { createReadStream } from 'node:fs';
import { KeyObject } from 'node:crypto';
import { GENESIS_HASH, keyIdOf, recordHash, verifyHashSignature, type ChainRecord } from './chain.js';

export type VerifyProblemKind =
  | 'unreadable'
  | 'empty'
  | 'malformed'
  | 'modified'
  | 'missing'
  | 'out_of_order'
  | 'chain_broken'
  | 'bad_signature'
  | 'unsigned'
  | 'truncated'
  | 'not_sealed';

export interface VerifyProblem {
  kind: VerifyProblemKind;
  /** 1-based line number of the bad record. */
  line: number;
  /** Sequence number the record has (or should have had). */
  seq: number | undefined;
  message: string;
}

export interface VerifyResult {
  ok: boolean;
  records: number;
  events: number;
  checkpoints: number;
  signedCheckpoints: number;
  /** Signatures were checked against the given public key. */
  signaturesChecked: boolean;
  /** The last record is a final checkpoint. */
  sealed: boolean;
  lastSeq: number;
  lastHash: string;
  /** Records after the last signed checkpoint (not covered by a signature). */
  unsignedTail: number;
  problem: VerifyProblem | undefined;
  warnings: string[];
}

export interface VerifyOptions {
  /** Ed25519 public key: every checkpoint must be signed by it. */
  publicKey?: KeyObject;
  /** Accept a file that does not end with a final checkpoint (a live file). Default false. */
  allowOpen?: boolean;
}

async function* lines(path: string): AsyncGenerator<{ text: string; complete: boolean }> {
  let rest = '';
  const stream = createReadStream(path, { encoding: 'utf8', highWaterMark: 1 << 20 });
  for await (const chunk of stream as AsyncIterable<string>) {
    rest += chunk;
    let i: number;
    let start = 0;
    while ((i = rest.indexOf('\n', start)) !== -1) {
      yield { text: rest.slice(start, i), complete: true };
      start = i + 1;
    }
    rest = rest.slice(start);
  }
  if (rest.length > 0) yield { text: rest, complete: false };
}

export async function verifyAuditFile(path: string, options: VerifyOptions | KeyObject = {}): Promise<VerifyResult> {
  const opts: VerifyOptions = options instanceof KeyObject ? { publicKey: options } : options;
  const keyId = opts.publicKey ? keyIdOf(opts.publicKey) : undefined;
  const res: VerifyResult = {
    ok: false,
    records: 0,
    events: 0,
    checkpoints: 0,
    signedCheckpoints: 0,
    signaturesChecked: opts.publicKey !== undefined,
    sealed: false,
    lastSeq: 0,
    lastHash: GENESIS_HASH,
    unsignedTail: 0,
    problem: undefined,
    warnings: [],
  };
  const fail = (kind: VerifyProblemKind, line: number, seq: number | undefined, message: string): VerifyResult => {
    res.problem = { kind, line, seq, message };
    res.ok = false;
    return res;
  };

  let lineNo = 0;
  let expectSeq = 1;
  let prevHash = GENESIS_HASH;
  let lastWasFinal = false;
  try {
    for await (const { text, complete } of lines(path)) {
      lineNo++;
      if (!complete) {
        return fail('truncated', lineNo, expectSeq, `line ${lineNo} (seq ${expectSeq}) is incomplete: the file was truncated or a write was cut short`);
      }
      if (text.trim() === '') return fail('malformed', lineNo, expectSeq, `line ${lineNo} is empty: a record was removed or the file was edited`);
      let rec: ChainRecord;
      try {
        rec = JSON.parse(text) as ChainRecord;
      } catch {
        return fail('malformed', lineNo, expectSeq, `line ${lineNo} is not valid JSON: the record was edited or damaged`);
      }
      if (
        rec === null ||
        typeof rec !== 'object' ||
        !Number.isSafeInteger(rec.seq) ||
        typeof rec.prevHash !== 'string' ||
        typeof rec.hash !== 'string' ||
        (rec.event === undefined) === (rec.checkpoint === undefined)
      ) {
        return fail('malformed', lineNo, expectSeq, `line ${lineNo} is not a chain record (seq, prevHash, hash and one of event/checkpoint)`);
      }
      const body = rec.event !== undefined ? { event: rec.event } : { checkpoint: rec.checkpoint };
      if (recordHash(rec.seq, rec.prevHash, body) !== rec.hash) {
        return fail('modified', lineNo, rec.seq, `record seq ${rec.seq} at line ${lineNo} was modified: its content does not match its hash`);
      }
      if (rec.seq > expectSeq) {
        const n = rec.seq - expectSeq;
        return fail(
          'missing',
          lineNo,
          expectSeq,
          `${n === 1 ? `record seq ${expectSeq} is` : `records seq ${expectSeq}..${rec.seq - 1} are`} missing before line ${lineNo} (found seq ${rec.seq})`,
        );
      }
      if (rec.seq < expectSeq) {
        return fail('out_of_order', lineNo, rec.seq, `record seq ${rec.seq} at line ${lineNo} is out of order (expected seq ${expectSeq}): records were swapped or duplicated`);
      }
      if (rec.prevHash !== prevHash) {
        return fail('chain_broken', lineNo, rec.seq, `record seq ${rec.seq} at line ${lineNo} does not link to the record before it: the chain was rewritten`);
      }
      res.records++;
      lastWasFinal = false;
      if (rec.checkpoint !== undefined) {
        res.checkpoints++;
        const cp = rec.checkpoint;
        if (cp.records !== rec.seq - 1) {
          return fail('modified', lineNo, rec.seq, `checkpoint seq ${rec.seq} at line ${lineNo} claims ${cp.records} records before it`);
        }
        if (typeof rec.sig === 'string') res.signedCheckpoints++;
        if (opts.publicKey) {
          if (typeof rec.sig !== 'string') {
            return fail('unsigned', lineNo, rec.seq, `checkpoint seq ${rec.seq} at line ${lineNo} is not signed, but a public key was given`);
          }
          if (!verifyHashSignature(rec.hash, rec.sig, opts.publicKey)) {
            return fail(
              'bad_signature',
              lineNo,
              rec.seq,
              `checkpoint seq ${rec.seq} at line ${lineNo} has a bad signature${cp.keyId !== undefined && cp.keyId !== keyId ? ` (signed by key ${cp.keyId}, not by the given key ${keyId})` : ''}: the chain up to it was rewritten`,
            );
          }
          res.unsignedTail = 0;
        } else {
          res.unsignedTail = 0;
        }
        lastWasFinal = cp.final === true;
      } else {
        res.events++;
        res.unsignedTail++;
      }
      prevHash = rec.hash;
      expectSeq = rec.seq + 1;
      res.lastSeq = rec.seq;
      res.lastHash = rec.hash;
    }
  } catch (err) {
    return fail('unreadable', 0, undefined, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  if (lineNo === 0) return fail('empty', 0, undefined, `${path} is empty: no audit records`);
  res.sealed = lastWasFinal;
  if (!opts.publicKey) {
    res.warnings.push(
      res.signedCheckpoints > 0
        ? 'signatures not checked (give the public key with --key): the chain alone detects damage and edits, not a rewrite of the whole file'
        : 'the file has no signed checkpoints: the chain alone detects damage and edits, not a rewrite of the whole file',
    );
  }
  if (!res.sealed) {
    const msg = `the file does not end with a final checkpoint: the last ${res.unsignedTail} record(s) after seq ${res.lastSeq - res.unsignedTail} are not sealed; the file was truncated, or the gateway is still running or did not shut down cleanly`;
    if (!opts.allowOpen) return fail('not_sealed', lineNo, res.lastSeq, msg);
    res.warnings.push(msg);
  }
  res.ok = true;
  return res;
}
