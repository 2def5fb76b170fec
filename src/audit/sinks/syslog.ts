/**
 * RFC 5424 syslog over TCP or TLS (RFC 5425), with octet-counting framing (RFC 6587 3.4.1):
 * each frame is `MSG-LEN SP SYSLOG-MSG`. The MSG part is the event as JSON (UTF-8 with BOM, as
 * RFC 5424 6.4 asks); MSGID is the event type. TLS verifies the collector's certificate.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { hostname as osHostname } from 'node:os';
import { readFileSync } from 'node:fs';
import type { AuditEvent, AuditSink } from '../types.js';

export interface SyslogAuditSinkOptions {
  url: string;
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  servername?: string;
  facility?: number;
  appName?: string;
  hostname?: string;
  connectTimeoutMs?: number;
  name?: string;
}

const BOM = '\uFEFF';

/** RFC 5424 severity for an event. */
export function severityOf(e: AuditEvent): number {
  if (e.type.startsWith('incident.')) return 1; // alert
  if (e.type === 'anomaly.detected' || e.type === 'audit.events.dropped') return 3; // error
  if (e.outcome === 'denied' || e.outcome === 'failure') return 4; // warning
  return 6; // informational
}

/** Printable US-ASCII without spaces (RFC 5424 PRINTUSASCII), at most `max` characters. */
function field(s: string | undefined, max: number): string {
  if (!s) return '-';
  const clean = s.replace(/[^!-~]/g, '_').slice(0, max);
  return clean === '' ? '-' : clean;
}

export function formatSyslog(e: AuditEvent, opts: { facility: number; appName: string; hostname: string; procId: string }): string {
  const pri = opts.facility * 8 + severityOf(e);
  const time = typeof e.time === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$/.test(e.time) ? e.time : new Date().toISOString();
  return `<${pri}>1 ${time} ${field(opts.hostname, 255)} ${field(opts.appName, 48)} ${field(opts.procId, 128)} ${field(e.type, 32)} - ${BOM}${JSON.stringify(e)}`;
}

/** Octet-counting frame: the length is in bytes of the UTF-8 message. */
export function frame(msg: string): Buffer {
  const body = Buffer.from(msg, 'utf8');
  return Buffer.concat([Buffer.from(`${body.length} `, 'ascii'), body]);
}

function pem(v: string | Buffer | undefined): string | Buffer | undefined {
  if (v === undefined) return undefined;
  if (Buffer.isBuffer(v) || v.includes('-----BEGIN')) return v;
  return readFileSync(v);
}

export class SyslogAuditSink implements AuditSink {
  readonly name: string;
  private readonly secure: boolean;
  private readonly host: string;
  private readonly port: number;
  private socket: Socket | undefined;
  private connecting: Promise<Socket> | undefined;
  private readonly opts: SyslogAuditSinkOptions;
  private readonly fmt: { facility: number; appName: string; hostname: string; procId: string };

  constructor(options: SyslogAuditSinkOptions) {
    const u = new URL(options.url);
    if (u.protocol !== 'tcp:' && u.protocol !== 'tls:') throw new Error(`syslog url ${options.url}: use tcp://HOST:PORT or tls://HOST:PORT`);
    this.secure = u.protocol === 'tls:';
    this.host = u.hostname.replace(/^\[|\]$/g, '');
    this.port = Number(u.port);
    if (!Number.isInteger(this.port) || this.port <= 0) throw new Error(`syslog url ${options.url}: a port is required`);
    this.opts = { ...options, ca: pem(options.ca), cert: pem(options.cert), key: pem(options.key) };
    this.name = options.name ?? `syslog:${u.protocol}//${u.host}`;
    this.fmt = {
      facility: options.facility ?? 13,
      appName: options.appName ?? 'mcp-bastion',
      hostname: options.hostname ?? osHostname(),
      procId: String(process.pid),
    };
  }

  private connect(): Promise<Socket> {
    if (this.socket && !this.socket.destroyed && this.socket.writable) return Promise.resolve(this.socket);
    this.connecting ??= new Promise<Socket>((resolve, reject) => {
      const timeoutMs = this.opts.connectTimeoutMs ?? 5000;
      const sock = this.secure
        ? tlsConnect({
            host: this.host,
            port: this.port,
            servername: this.opts.servername ?? (/^[\d.:]+$/.test(this.host) ? undefined : this.host),
            ca: this.opts.ca,
            cert: this.opts.cert,
            key: this.opts.key,
            minVersion: 'TLSv1.2',
            rejectUnauthorized: true,
          })
        : netConnect({ host: this.host, port: this.port });
      const timer = setTimeout(() => sock.destroy(new Error(`syslog connect to ${this.host}:${this.port} timed out after ${timeoutMs} ms`)), timeoutMs);
      const onError = (err: Error): void => {
        clearTimeout(timer);
        this.connecting = undefined;
        reject(err);
      };
      sock.once('error', onError);
      sock.once(this.secure ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        sock.off('error', onError);
        sock.setKeepAlive(true, 30_000);
        sock.on('error', () => sock.destroy());
        sock.on('close', () => {
          if (this.socket === sock) this.socket = undefined;
        });
        // The collector sends nothing; anything it does send is ignored.
        sock.on('data', () => undefined);
        this.socket = sock;
        this.connecting = undefined;
        resolve(sock);
      });
    });
    return this.connecting;
  }

  async write(events: readonly AuditEvent[]): Promise<void> {
    const sock = await this.connect();
    const buf = Buffer.concat(events.map((e) => frame(formatSyslog(e, this.fmt))));
    await new Promise<void>((resolve, reject) => {
      sock.write(buf, (err) => {
        if (err) {
          sock.destroy();
          reject(err);
        } else resolve();
      });
    });
  }

  async close(): Promise<void> {
    const sock = this.socket;
    this.socket = undefined;
    if (!sock) return;
    await new Promise<void>((resolve) => {
      sock.end(() => resolve());
      setTimeout(() => {
        sock.destroy();
        resolve();
      }, 2000).unref();
    });
  }
}
