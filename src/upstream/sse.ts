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
  /** The pieces of a line not ended yet. */
  private partial: string[] = [];
  private partialBytes = 0;
  /** The last chunk ended with CR: an LF starting the next one belongs to it. */
  private afterCr = false;
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
    // An empty chunk carries nothing, and must not end a CR's wait for its LF.
    if (this.failed || chunk.length === 0) return;
    if (this.first) {
      this.first = false;
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
    }
    // Linear in the bytes received whatever the line lengths: only the new chunk is searched (a
    // line's earlier pieces wait in `partial`, joined once when it ends), and the next CR and LF
    // positions are remembered (-2: not searched yet, -1: none left in the chunk).
    let pos = 0;
    if (this.afterCr) {
      this.afterCr = false;
      if (chunk.charCodeAt(0) === 0x0a) pos = 1; // the LF of a CRLF split across pushes
    }
    let lf = -2;
    let cr = -2;
    for (;;) {
      if (lf !== -1 && lf < pos) lf = chunk.indexOf('\n', pos);
      if (cr !== -1 && cr < pos) cr = chunk.indexOf('\r', pos);
      const eol = cr < 0 ? lf : lf < 0 ? cr : Math.min(lf, cr);
      if (eol < 0) break;
      let line = chunk.slice(pos, eol);
      if (this.partial.length > 0) {
        line = this.partial.join('') + line;
        this.partial = [];
        this.partialBytes = 0;
      }
      if (eol === cr) {
        if (eol + 1 === chunk.length) this.afterCr = true;
        pos = eol + (lf === eol + 1 ? 2 : 1);
      } else {
        pos = eol + 1;
      }
      this.line(line);
      if (this.failed) return;
    }
    if (pos < chunk.length) {
      this.partial.push(pos === 0 ? chunk : chunk.slice(pos));
      this.partialBytes += chunk.length - pos;
    }
    if (this.partialBytes + this.dataBytes > this.maxEventBytes) this.fail(`event exceeds ${this.maxEventBytes} bytes`);
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
