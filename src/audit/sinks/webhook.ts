/**
 * POST batches of events as JSON to a URL: `{"events":[...]}`. A failure (network error, timeout,
 * any status but 400/413/415/422) rejects the write: the audit queue keeps the batch and retries it with exponential
 * backoff, so nothing is lost when the receiver comes back. Those four are permanent (dropped,
 * counted, logged). Each event has a stable `id` for de-duplication after a retry; with `secret`
 * the body is signed: `X-Bastion-Signature: sha256=HEX(HMAC-SHA256(secret, body))`.
 */
import { createHmac } from 'node:crypto';
import { SinkRejectedError } from '../log.js';
import { safeMessage, sinkUrl, type SinkUrl } from './http-url.js';
import type { AuditEvent, AuditSink } from '../types.js';

/** Statuses that say the payload itself is unacceptable: retrying cannot help. */
const PERMANENT = new Set([400, 413, 415, 422]);

export interface WebhookAuditSinkOptions {
  url: string;
  headers?: Record<string, string>;
  secret?: string;
  timeoutMs?: number;
  name?: string;
}

export class WebhookAuditSink implements AuditSink {
  readonly name: string;
  private readonly opts: WebhookAuditSinkOptions;
  private readonly target: string;
  private readonly su: SinkUrl;

  constructor(options: WebhookAuditSinkOptions) {
    this.opts = options;
    this.su = sinkUrl(options.url);
    this.target = this.su.shown;
    this.name = options.name ?? `webhook:${this.target}`;
  }

  async write(events: readonly AuditEvent[]): Promise<void> {
    const body = JSON.stringify({ events });
    const headers: Record<string, string> = { ...(this.su.authorization ? { authorization: this.su.authorization } : {}), ...this.opts.headers, 'content-type': 'application/json' };
    if (this.opts.secret) headers['x-bastion-signature'] = `sha256=${createHmac('sha256', this.opts.secret).update(body).digest('hex')}`;
    let res: Response;
    try {
      res = await fetch(this.su.url, { method: 'POST', headers, body, signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000) });
    } catch (err) {
      // The URL may carry a credential in its query: name only origin and path.
      throw new Error(`webhook ${this.target} unreachable: ${safeMessage(err, [this.opts.url, this.su.url], this.target)}`);
    }
    await res.arrayBuffer().catch(() => undefined);
    if (res.ok) return;
    if (PERMANENT.has(res.status)) {
      throw new SinkRejectedError(`webhook ${this.target} refused the batch with ${res.status} (the payload itself was refused; not retried)`);
    }
    // Everything else (408, 429, 5xx, and 401/403/404, which an operator can fix) is retried.
    throw new Error(`webhook ${this.target} answered ${res.status}; will retry (check its URL and credentials if this persists)`);
  }

  async close(): Promise<void> {}
}
