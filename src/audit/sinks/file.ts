/**
 * Append-only JSON-lines file with a SHA-256 hash chain and periodic (optionally Ed25519-signed)
 * checkpoints. The record format is in ../chain.ts; `bastion audit verify FILE` checks it.
 *
 * An existing file is continued: the chain picks up from its last record. A file whose last
 * line is incomplete (a crash mid-write by another process, or tampering) is refused at open
 * rather than silently extended; move it aside after checking it.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import type { AuditEvent, AuditSink } from '../types.js';
import { GENESIS_HASH, keyIdOf, loadSigningKey, recordHash, signHash, type ChainRecord, type CheckpointBody } from '../chain.js';

export interface FileAuditSinkOptions {
  path: string;
  /** Ed25519 private key file (PKCS#8 PEM), or a loaded key. */
  keyFile?: string;
  key?: KeyObject;
  /** Checkpoint after this many records (default 1000). */
  everyRecords?: number;
  /** Also checkpoint when records have waited this long without one (default 60 000 ms; 0: off). */
  everyMs?: number;
  fsync?: boolean;
  now?: () => number;
  name?: string;
}

const TAIL_READ = 1 << 20;

export class FileAuditSink implements AuditSink {
  readonly name: string;
  readonly path: string;
  private fh: FileHandle | undefined;
  private opening: Promise<void> | undefined;
  private seq = 0;
  private prevHash = GENESIS_HASH;
  private size = 0;
  private sinceCheckpoint = 0;
  private readonly key: KeyObject | undefined;
  private readonly keyId: string | undefined;
  private readonly everyRecords: number;
  private readonly everyMs: number;
  private lastCheckpointAt: number;
  private timer: NodeJS.Timeout | undefined;
  private serialTail: Promise<unknown> = Promise.resolve();
  private readonly fsync: boolean;
  private readonly now: () => number;

  constructor(options: FileAuditSinkOptions) {
    this.path = options.path;
    this.name = options.name ?? `file:${options.path}`;
    this.key = options.key ?? (options.keyFile ? loadSigningKey(options.keyFile) : undefined);
    this.keyId = this.key ? keyIdOf(createPublicKey(this.key)) : undefined;
    this.everyRecords = Math.max(1, options.everyRecords ?? 1000);
    this.everyMs = Math.max(0, options.everyMs ?? 60_000);
    this.fsync = options.fsync ?? false;
    this.now = options.now ?? Date.now;
    this.lastCheckpointAt = this.now();
  }

  /** Appends never interleave: writes, timed checkpoints and close run one after another. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.serialTail.then(fn, fn);
    this.serialTail = run.catch(() => undefined);
    return run;
  }

  /** Open the file and recover the chain state from its last record. Idempotent. */
  open(): Promise<void> {
    this.opening ??= this.doOpen().catch((err: unknown) => {
      this.opening = undefined;
      throw err;
    });
    return this.opening;
  }

  private async doOpen(): Promise<void> {
    const fh = await open(this.path, 'a+', 0o600);
    try {
      const { size } = await fh.stat();
      if (size > 0) {
        const len = Math.min(size, TAIL_READ);
        const buf = Buffer.alloc(len);
        await fh.read(buf, 0, len, size - len);
        const text = buf.toString('utf8');
        if (!text.endsWith('\n')) {
          throw new Error(
            `audit file ${this.path} ends with an incomplete record; run \`bastion audit verify ${this.path}\`, move the file aside and start again`,
          );
        }
        const lines = text.slice(0, -1).split('\n');
        const last = lines[lines.length - 1] ?? '';
        let rec: ChainRecord;
        try {
          rec = JSON.parse(last) as ChainRecord;
        } catch {
          throw new Error(`audit file ${this.path}: its last line is not a chain record; run \`bastion audit verify ${this.path}\` and move the file aside`);
        }
        if (typeof rec.seq !== 'number' || typeof rec.hash !== 'string' || !/^[0-9a-f]{64}$/.test(rec.hash)) {
          throw new Error(`audit file ${this.path}: its last line is not a chain record; run \`bastion audit verify ${this.path}\` and move the file aside`);
        }
        this.seq = rec.seq;
        this.prevHash = rec.hash;
      }
      this.size = size;
      this.fh = fh;
      if (this.everyMs > 0) {
        this.timer = setInterval(() => void this.checkpointIfDue().catch(() => undefined), Math.min(this.everyMs, 60_000));
        this.timer.unref();
      }
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  private line(body: { event?: Record<string, unknown>; checkpoint?: CheckpointBody }): string {
    const seq = this.seq + 1;
    const hash = recordHash(seq, this.prevHash, body);
    const rec: ChainRecord = { seq, prevHash: this.prevHash, ...body, hash };
    if (body.checkpoint && this.key) rec.sig = signHash(hash, this.key);
    this.seq = seq;
    this.prevHash = hash;
    return `${JSON.stringify(rec)}\n`;
  }

  /** Body of the checkpoint about to be written; resets the counters it covers. */
  private checkpointBody(final: boolean): CheckpointBody {
    this.sinceCheckpoint = 0;
    this.lastCheckpointAt = this.now();
    const cp: CheckpointBody = { records: this.seq, time: new Date(this.lastCheckpointAt).toISOString(), final };
    if (this.keyId) cp.keyId = this.keyId;
    return cp;
  }

  async write(events: readonly AuditEvent[]): Promise<void> {
    await this.open();
    await this.serial(() =>
      this.append((emit) => {
        for (const e of events) {
          emit({ event: e as Record<string, unknown> });
          this.sinceCheckpoint++;
          if (this.sinceCheckpoint >= this.everyRecords) emit({ checkpoint: this.checkpointBody(false) });
        }
        if (this.sinceCheckpoint > 0 && this.everyMs > 0 && this.now() - this.lastCheckpointAt >= this.everyMs) emit({ checkpoint: this.checkpointBody(false) });
      }),
    );
  }

  /**
   * Seal records that have waited `everyMs` without a checkpoint (called by a timer, so a quiet
   * gateway does not leave its last records unsigned for long).
   */
  checkpointIfDue(): Promise<void> {
    return this.serial(async () => {
      if (this.fh === undefined || this.sinceCheckpoint === 0 || this.everyMs === 0) return;
      if (this.now() - this.lastCheckpointAt < this.everyMs) return;
      await this.append((emit) => emit({ checkpoint: this.checkpointBody(false) }));
    });
  }

  /** Build lines with the chain state, write them in one append; on failure roll file and state back. */
  private async append(build: (emit: (body: { event?: Record<string, unknown>; checkpoint?: CheckpointBody }) => void) => void): Promise<void> {
    const fh = this.fh!;
    const saved = { seq: this.seq, prevHash: this.prevHash, since: this.sinceCheckpoint, at: this.lastCheckpointAt };
    let text = '';
    build((body) => {
      text += this.line(body);
    });
    const buf = Buffer.from(text, 'utf8');
    try {
      let off = 0;
      while (off < buf.length) {
        const { bytesWritten } = await fh.write(buf, off, buf.length - off);
        off += bytesWritten;
      }
      if (this.fsync) await fh.datasync();
      this.size += buf.length;
    } catch (err) {
      this.seq = saved.seq;
      this.prevHash = saved.prevHash;
      this.sinceCheckpoint = saved.since;
      this.lastCheckpointAt = saved.at;
      // Our own partial write is not evidence: cut it so the retry continues a whole chain.
      await fh.truncate(this.size).catch(() => undefined);
      throw err;
    }
  }

  close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    return this.serial(() => this.doClose());
  }

  private async doClose(): Promise<void> {
    if (this.opening === undefined) return;
    try {
      await this.opening;
    } catch {
      return;
    }
    const fh = this.fh;
    if (fh === undefined) return;
    try {
      await this.append((emit) => emit({ checkpoint: this.checkpointBody(true) }));
      await fh.datasync().catch(() => undefined);
    } finally {
      this.fh = undefined;
      this.opening = undefined;
      await fh.close();
    }
  }
}
