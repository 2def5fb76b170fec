/**
 * `transport.body`: read the POST body within the size limit (413 past it) and parse exactly one
 * JSON-RPC message (400 / -32700 on bad JSON, 400 / -32600 on a bad message or a batch).
 */
import { BastionError } from '../../errors.js';
import type { Stage } from '../../pipeline/context.js';
import { toMessage } from '../../pipeline/messages.js';

export function bodyStage(opts: { maxBodyBytes: number }): Stage {
  return {
    name: 'transport.body',
    phase: 'transport',
    async onRequest(ctx) {
      if (ctx.http.method !== 'POST') return;
      const buf = await ctx.http.readBody(opts.maxBodyBytes);
      let parsed: unknown;
      try {
        parsed = JSON.parse(buf.toString('utf8'));
      } catch {
        throw new BastionError('ERR_BASTION_TRANSPORT_PARSE_ERROR', 'Parse error: the body is not valid JSON', { reason: 'parse_error' });
      }
      if (Array.isArray(parsed)) {
        throw new BastionError('ERR_BASTION_TRANSPORT_INVALID_REQUEST', 'Invalid Request: JSON-RPC batches are not supported; send one message per request', {
          reason: 'batch',
        });
      }
      const msg = toMessage(parsed);
      if (typeof msg === 'string') {
        throw new BastionError('ERR_BASTION_TRANSPORT_INVALID_REQUEST', `Invalid Request: ${msg}`, { reason: 'invalid_message' });
      }
      ctx.message = msg;
    },
  };
}
