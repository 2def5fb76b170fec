/**
 * Stdio upstream: one child process per downstream session, MCP over newline-delimited JSON.
 *
 * Hostile-upstream rules: a line longer than `maxMessageBytes`, or a line that is not a JSON-RPC
 * message, ends the child (protocol violation); the session then fails its pending requests and
 * the next request restarts the child with backoff. The child gets an explicit environment (see
 * child-process.ts when present), never the gateway's.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import type { JsonRpcMessage } from '../pipeline/messages.js';
import { toMessage } from '../pipeline/messages.js';
import type { UpstreamConnection, UpstreamHandlers } from './connection.js';

export interface StdioSpawnSpec {
  command: string;
  args: string[];
  options: SpawnOptions;
}

export interface StdioUpstreamOptions {
  spec: StdioSpawnSpec;
  handlers: UpstreamHandlers;
  maxMessageBytes: number;
  /** Called with each stderr line (already truncated), for the operational log. */
  onStderr?: (line: string) => void;
}

const NL = 0x0a;

export class StdioUpstream implements UpstreamConnection {
  private child: ChildProcess | undefined;
  private closed = false;
  private exited = false;
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly opts: StdioUpstreamOptions) {}

  get alive(): boolean {
    return this.child !== undefined && !this.exited && !this.closed;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): Promise<void> {
    const { spec } = this.opts;
    return new Promise((resolve, reject) => {
      let child: ChildProcess;
      try {
        child = spawn(spec.command, spec.args, { ...spec.options, stdio: ['pipe', 'pipe', 'pipe'] });
      } catch (err) {
        reject(err);
        return;
      }
      this.child = child;
      const onSpawnError = (err: Error): void => {
        this.exited = true;
        reject(new Error(`cannot start ${spec.command}: ${err.message}`));
      };
      child.once('error', onSpawnError);
      child.once('spawn', () => {
        child.off('error', onSpawnError);
        child.on('error', (err) => this.fail('error', `child process error: ${err.message}`));
        resolve();
      });
      child.stdout!.on('data', (chunk: Buffer) => this.onData(chunk));
      child.stdin!.on('error', () => {
        /* EPIPE after exit: reported through 'exit' */
      });
      let errBuf = '';
      child.stderr!.setEncoding('utf8');
      child.stderr!.on('data', (s: string) => {
        errBuf += s;
        let i: number;
        while ((i = errBuf.indexOf('\n')) >= 0) {
          this.opts.onStderr?.(errBuf.slice(0, Math.min(i, 1000)));
          errBuf = errBuf.slice(i + 1);
        }
        if (errBuf.length > 8192) errBuf = errBuf.slice(-1000);
      });
      child.once('exit', (code, signal) => {
        this.exited = true;
        if (!this.closed) this.fail('exit', `process exited (${signal ? `signal ${signal}` : `code ${code}`})`);
      });
    });
  }

  private onData(chunk: Buffer): void {
    let start = 0;
    let nl = chunk.indexOf(NL, start);
    while (nl >= 0) {
      let line: Buffer;
      if (this.pendingBytes > 0) {
        this.pending.push(chunk.subarray(start, nl));
        line = Buffer.concat(this.pending, this.pendingBytes + (nl - start));
        this.pending = [];
        this.pendingBytes = 0;
      } else {
        line = chunk.subarray(start, nl);
      }
      if (line.length > this.opts.maxMessageBytes) {
        this.violate(`message of ${line.length} bytes exceeds the ${this.opts.maxMessageBytes}-byte limit`);
        return;
      }
      if (!this.deliver(line)) return;
      start = nl + 1;
      nl = chunk.indexOf(NL, start);
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.pending.push(rest);
      this.pendingBytes += rest.length;
      if (this.pendingBytes > this.opts.maxMessageBytes) {
        this.violate(`message exceeds the ${this.opts.maxMessageBytes}-byte limit`);
      }
    }
  }

  /** Returns false when the line ended the connection. */
  private deliver(line: Buffer): boolean {
    // Tolerate CRLF and blank lines.
    let end = line.length;
    if (end > 0 && line[end - 1] === 0x0d) end--;
    if (end === 0) return true;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line.toString('utf8', 0, end));
    } catch {
      this.violate('sent a line that is not JSON');
      return false;
    }
    const msg = toMessage(parsed);
    if (typeof msg === 'string') {
      this.violate(`sent an invalid JSON-RPC message: ${msg}`);
      return false;
    }
    this.opts.handlers.onMessage(msg, undefined);
    return !this.closed && !this.exited;
  }

  private violate(detail: string): void {
    this.fail('protocol', detail);
    this.child?.kill('SIGKILL');
  }

  private fail(kind: 'exit' | 'protocol' | 'error', detail: string): void {
    if (this.closed) return;
    this.closed = true;
    this.opts.handlers.onClose({ kind, detail });
  }

  /**
   * Messages written in one turn of the event loop leave in one write: the pipe is corked on the
   * first write and uncorked in the check phase, after every request that arrived in the same
   * poll has been forwarded. Under load this turns N writes (and N wake-ups of the child) into
   * one, for the gateway and for the child; a lone message waits only until the end of its turn.
   */
  send(msg: JsonRpcMessage): Promise<void> {
    const child = this.child;
    if (!child || !this.alive) return Promise.reject(new Error('upstream process is not running'));
    const stdin = child.stdin!;
    if (!this.corked) {
      this.corked = true;
      stdin.cork();
      setImmediate(this.uncork);
    }
    const ok = stdin.write(JSON.stringify(msg) + '\n');
    if (ok) return Promise.resolve();
    return new Promise((resolve) => stdin.once('drain', () => resolve()));
  }

  private corked = false;
  private readonly uncork = (): void => {
    this.corked = false;
    this.child?.stdin?.uncork();
  };

  setProtocolVersion(): void {
    /* stdio carries no version header */
  }

  async afterInitialized(): Promise<void> {
    /* the server → client channel is stdout, open from the start */
  }

  async close(): Promise<void> {
    const child = this.child;
    this.closed = true;
    if (!child || this.exited) return;
    // MCP stdio shutdown: close stdin, then SIGTERM, then SIGKILL.
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(t1);
        clearTimeout(t2);
        resolve();
      };
      child.once('exit', done);
      child.stdin!.end();
      const t1 = setTimeout(() => child.kill('SIGTERM'), 1000);
      const t2 = setTimeout(() => {
        child.kill('SIGKILL');
        resolve();
      }, 3000);
      t1.unref();
      t2.unref();
    });
  }
}
