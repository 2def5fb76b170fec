/**
 * Server-sent event streams towards the client, with event ids for resumption.
 *
 * A stream belongs to one session: either the standalone GET stream or the response stream of
 * one POST request. Event ids are `${streamId}.${seq}`; the session keeps the last N events of
 * all its streams so a client that reconnects with Last-Event-ID gets what it missed.
 */
import type { ServerResponse } from 'node:http';

export interface BufferedEvent {
  streamId: string;
  seq: number;
  data: string;
}

export class EventBuffer {
  private readonly ring: BufferedEvent[] = [];
  constructor(private readonly capacity: number) {}

  add(e: BufferedEvent): void {
    if (this.capacity === 0) return;
    if (this.ring.length >= this.capacity) this.ring.shift();
    this.ring.push(e);
  }

  /** Events of `streamId` after `seq`, oldest first. */
  after(streamId: string, seq: number): BufferedEvent[] {
    return this.ring.filter((e) => e.streamId === streamId && e.seq > seq);
  }
}

export function parseEventId(id: string): { streamId: string; seq: number } | undefined {
  const dot = id.lastIndexOf('.');
  if (dot <= 0) return undefined;
  const seq = Number(id.slice(dot + 1));
  if (!Number.isSafeInteger(seq) || seq < 0) return undefined;
  return { streamId: id.slice(0, dot), seq };
}

export class SseStream {
  private seq = 0;
  private res: ServerResponse | undefined;
  private keepAlive: NodeJS.Timeout | undefined;
  ended = false;

  constructor(
    readonly id: string,
    private readonly buffer: EventBuffer,
  ) {}

  get attached(): boolean {
    return this.res !== undefined && !this.res.destroyed && !this.res.writableEnded;
  }

  /** Attach a response (first open or a resumption); replays buffered events after `afterSeq`. */
  attach(res: ServerResponse, headers: Record<string, string>, afterSeq: number | undefined): void {
    this.detach();
    this.res = res;
    if (!res.headersSent) {
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
        ...headers,
      });
      res.flushHeaders();
    }
    if (afterSeq !== undefined) {
      for (const e of this.buffer.after(this.id, afterSeq)) res.write(frame(this.id, e.seq, e.data));
    }
    this.keepAlive = setInterval(() => {
      if (this.attached) this.res!.write(': keep-alive\n\n');
    }, 25_000);
    this.keepAlive.unref();
    res.once('close', () => {
      if (this.res === res) this.detach();
    });
  }

  private detach(): void {
    if (this.keepAlive) clearInterval(this.keepAlive);
    this.keepAlive = undefined;
    this.res = undefined;
  }

  /** Send one JSON-RPC message as an event; buffered for resumption even when detached. */
  send(json: string): void {
    const seq = ++this.seq;
    this.buffer.add({ streamId: this.id, seq, data: json });
    if (this.attached) this.res!.write(frame(this.id, seq, json));
  }

  /** End the stream (after the response of a POST stream). */
  end(): void {
    this.ended = true;
    const res = this.res;
    this.detach();
    if (res && !res.writableEnded) res.end();
  }
}

function frame(streamId: string, seq: number, data: string): string {
  return `event: message\nid: ${streamId}.${seq}\ndata: ${data}\n\n`;
}
