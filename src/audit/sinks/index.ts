/** Build the configured sinks. File sinks are opened here so a bad file or key fails start-up. */
import { isAbsolute, resolve } from 'node:path';
import type { AuditSinkConfig } from '../../config/audit.js';
import type { SinkEntry } from '../log.js';
import type { AuditSink } from '../types.js';
import { StdoutAuditSink } from './stdout.js';
import { FileAuditSink } from './file.js';
import { SyslogAuditSink } from './syslog.js';
import { OtlpAuditSink } from './otlp.js';
import { WebhookAuditSink } from './webhook.js';

export { StdoutAuditSink, FileAuditSink, SyslogAuditSink, OtlpAuditSink, WebhookAuditSink };

export interface CreateSinksOptions {
  /** Folder relative paths are resolved against (the config file's folder). */
  baseDir?: string;
  now?: () => number;
  /** Stream for the stdout sink (tests). */
  stdout?: NodeJS.WritableStream;
}

export async function createAuditSinks(configs: readonly AuditSinkConfig[], options: CreateSinksOptions = {}): Promise<SinkEntry[]> {
  const base = options.baseDir ?? process.cwd();
  const path = (p: string): string => (isAbsolute(p) ? p : resolve(base, p));
  const out: SinkEntry[] = [];
  const names = new Map<string, number>();
  const unique = (name: string): string => {
    const n = (names.get(name) ?? 0) + 1;
    names.set(name, n);
    return n === 1 ? name : `${name}#${n}`;
  };
  for (const c of configs) {
    let sink: AuditSink;
    switch (c.type) {
      case 'stdout':
        sink = new StdoutAuditSink({ stream: options.stdout, name: unique('stdout') });
        break;
      case 'file': {
        const f = new FileAuditSink({
          path: path(c.path),
          keyFile: c.checkpoint.keyFile ? path(c.checkpoint.keyFile) : undefined,
          everyRecords: c.checkpoint.everyRecords,
          everyMs: c.checkpoint.everySeconds * 1000,
          fsync: c.fsync,
          now: options.now,
        });
        await f.open();
        sink = f;
        break;
      }
      case 'syslog':
        sink = new SyslogAuditSink({
          url: c.url,
          ca: c.ca ? path(c.ca) : undefined,
          cert: c.cert ? path(c.cert) : undefined,
          key: c.key ? path(c.key) : undefined,
          servername: c.servername,
          facility: c.facility,
          appName: c.appName,
          hostname: c.hostname,
          connectTimeoutMs: c.connectTimeoutMs,
        });
        break;
      case 'otlp':
        sink = new OtlpAuditSink({ endpoint: c.endpoint, headers: c.headers, traces: c.traces, serviceName: c.serviceName, timeoutMs: c.timeoutMs });
        break;
      case 'webhook':
        sink = new WebhookAuditSink({ url: c.url, headers: c.headers, secret: c.secret, timeoutMs: c.timeoutMs });
        break;
    }
    out.push({ sink, batchSize: c.batchSize, retry: c.retry });
  }
  return out;
}
