/**
 * `transport.http-shape`: what the Streamable HTTP transport allows before any body is read:
 * the method (POST, GET, DELETE), the Accept header, the Content-Type and declared length,
 * and the MCP-Protocol-Version header (400 when present and unsupported).
 */
import { BastionError } from '../../errors.js';
import type { Stage } from '../../pipeline/context.js';
import { SUPPORTED_PROTOCOL_VERSIONS } from '../../session/protocol.js';

export function httpShapeStage(opts: { maxBodyBytes: number }): Stage {
  return {
    name: 'transport.http-shape',
    phase: 'transport',
    onRequest(ctx) {
      const { method, headers } = ctx.http;
      if (method !== 'POST' && method !== 'GET' && method !== 'DELETE') {
        throw new BastionError('ERR_BASTION_TRANSPORT_METHOD_NOT_ALLOWED', `Method ${method} is not allowed; use POST, GET or DELETE`, {
          headers: { allow: 'POST, GET, DELETE' },
        });
      }
      const version = headers['mcp-protocol-version'];
      if (version !== undefined && !SUPPORTED_PROTOCOL_VERSIONS.includes(String(version))) {
        throw new BastionError(
          'ERR_BASTION_TRANSPORT_PROTOCOL_VERSION',
          `Bad Request: unsupported MCP-Protocol-Version ${JSON.stringify(String(version)).slice(0, 40)} (supported: ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')})`,
          { reason: 'unsupported_protocol_version' },
        );
      }
      const accept = String(headers.accept ?? '');
      if (method === 'GET') {
        if (!accepts(accept, 'text/event-stream')) {
          throw new BastionError('ERR_BASTION_TRANSPORT_NOT_ACCEPTABLE', 'Not Acceptable: a GET must accept text/event-stream');
        }
        return;
      }
      if (method === 'POST') {
        if (!accepts(accept, 'application/json') || !accepts(accept, 'text/event-stream')) {
          throw new BastionError('ERR_BASTION_TRANSPORT_NOT_ACCEPTABLE', 'Not Acceptable: the client must accept both application/json and text/event-stream');
        }
        const ctype = String(headers['content-type'] ?? '');
        if (!ctype.toLowerCase().startsWith('application/json')) {
          throw new BastionError('ERR_BASTION_TRANSPORT_UNSUPPORTED_MEDIA_TYPE', 'Unsupported Media Type: the body must be application/json');
        }
        const len = headers['content-length'];
        if (len !== undefined && Number(len) > opts.maxBodyBytes) {
          throw new BastionError('ERR_BASTION_TRANSPORT_BODY_TOO_LARGE', `Payload Too Large: the body exceeds ${opts.maxBodyBytes} bytes (transport.maxBodyBytes)`, {
            reason: 'body_too_large',
          });
        }
      }
    },
  };
}

function accepts(accept: string, type: string): boolean {
  if (accept.includes(type) || accept.includes('*/*')) return true;
  const major = type.slice(0, type.indexOf('/'));
  return accept.includes(`${major}/*`);
}
