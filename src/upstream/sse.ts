/**
 * Incremental text/event-stream parser (WHATWG HTML §9.2 event stream interpretation), bounded:
 * an event larger than `maxEventBytes` is a protocol violation reported through onError.
 */
export interface SseEvent {
  id: string | undefined;
  event: string;
  data: string;
}

export interface SseParserHandlers {
  onEvent(e: SseEvent): void;
  onRetry?(ms: number): void;
  onError(detail: string): void;
}

export class SseParser {
  private buf = '';
  private data: string[] = [];
  private dataBytes = 0;
  private event = '';
  private id: string | undefined;
  private failed = false;
  private first = true;
  lastEventId: string | undefined;

  constructor(
    private readonly h: SseParserHandlers,
    private readonly maxEventBytes: number,
  ) {}

  push(chunk: string): void {
    if (this.failed) return;
    if (this.first) {
      this.first = false;
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
    }
    this.buf += chunk;
    let start = 0;
    for (;;) {
      const nl = this.nextEol(start);
      if (nl < 0) break;
      const line = this.buf.slice(start, nl);
      start = nl + (this.buf[nl] === '\r' && this.buf[nl + 1] === '\n' ? 2 : 1);
      this.line(line);
      if (this.failed) return;
    }
    this.buf = this.buf.slice(start);
    if (this.buf.length + this.dataBytes > this.maxEventBytes) this.fail(`event exceeds ${this.maxEventBytes} bytes`);
  }

  private nextEol(from: number): number {
    const n = this.buf.indexOf('\n', from);
    const r = this.buf.indexOf('\r', from);
    if (r < 0) return n;
    if (n < 0) return r === this.buf.length - 1 ? -1 : r; // a trailing CR may be half of CRLF
    return Math.min(n, r);
  }

  private line(line: string): void {
    if (line === '') {
      this.dispatch();
      return;
    }
    if (line.charCodeAt(0) === 0x3a) return; // comment
    const c = line.indexOf(':');
    const field = c < 0 ? line : line.slice(0, c);
    let value = c < 0 ? '' : line.slice(c + 1);
    if (value.charCodeAt(0) === 0x20) value = value.slice(1);
    switch (field) {
      case 'data':
        this.data.push(value);
        this.dataBytes += value.length + 1;
        if (this.dataBytes > this.maxEventBytes) this.fail(`event exceeds ${this.maxEventBytes} bytes`);
        break;
      case 'event':
        this.event = value;
        break;
      case 'id':
        if (!value.includes('\u0000')) this.id = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.h.onRetry?.(Number(value));
        break;
      default:
        break;
    }
  }

  private dispatch(): void {
    if (this.id !== undefined) this.lastEventId = this.id;
    // An event with an empty data buffer is not dispatched (a priming event carries only an id).
    const data = this.data.join('\n');
    if (data !== '') this.h.onEvent({ id: this.id, event: this.event || 'message', data });
    this.data = [];
    this.dataBytes = 0;
    this.event = '';
    this.id = undefined;
  }

  private fail(detail: string): void {
    this.failed = true;
    this.h.onError(detail);
  }
}
