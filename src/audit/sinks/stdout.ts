/** JSON lines on standard output (or any writable stream), one event per line. */
import type { AuditEvent, AuditSink } from '../types.js';

export class StdoutAuditSink implements AuditSink {
  readonly name: string;
  private readonly out: NodeJS.WritableStream;

  constructor(options: { stream?: NodeJS.WritableStream; name?: string } = {}) {
    this.out = options.stream ?? process.stdout;
    this.name = options.name ?? 'stdout';
  }

  write(events: readonly AuditEvent[]): Promise<void> {
    let text = '';
    for (const e of events) text += `${JSON.stringify(e)}\n`;
    return new Promise((resolve, reject) => {
      this.out.write(text, (err) => (err ? reject(err) : resolve()));
    });
  }

  async close(): Promise<void> {}
}
