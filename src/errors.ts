/**
 * Every error the gateway can show a client or an operator, with a stable code.
 *
 * The codes are a closed union so `switch (err.code)` narrows, and each one is listed once in
 * docs/errors.md (a test keeps the two in step). Codes are never reused for another meaning.
 *
 * `toWire()` is the only function that turns an error into what goes on the wire: the HTTP
 * status, the headers the specifications require (`WWW-Authenticate`, `Retry-After`, ...) and a
 * JSON-RPC error body. It never includes `cause` or anything the error was built from beyond the
 * public message, so token material cannot leak through it.
 */

export const ERROR_CODES = {
  // transport
  ERR_BASTION_TRANSPORT_ORIGIN_FORBIDDEN: { status: 403, rpc: -32600 },
  ERR_BASTION_TRANSPORT_HOST_FORBIDDEN: { status: 403, rpc: -32600 },
  ERR_BASTION_TRANSPORT_BODY_TOO_LARGE: { status: 413, rpc: -32600 },
  ERR_BASTION_TRANSPORT_PARSE_ERROR: { status: 400, rpc: -32700 },
  ERR_BASTION_TRANSPORT_INVALID_REQUEST: { status: 400, rpc: -32600 },
  ERR_BASTION_TRANSPORT_UNSUPPORTED_MEDIA_TYPE: { status: 415, rpc: -32600 },
  ERR_BASTION_TRANSPORT_NOT_ACCEPTABLE: { status: 406, rpc: -32600 },
  ERR_BASTION_TRANSPORT_METHOD_NOT_ALLOWED: { status: 405, rpc: -32600 },
  ERR_BASTION_TRANSPORT_PROTOCOL_VERSION: { status: 400, rpc: -32600 },
  ERR_BASTION_TRANSPORT_NOT_FOUND: { status: 404, rpc: -32600 },
  ERR_BASTION_TRANSPORT_TLS_REQUIRED: { status: 403, rpc: -32600 },
  ERR_BASTION_TRANSPORT_SHUTTING_DOWN: { status: 503, rpc: -32603 },
  // sessions
  ERR_BASTION_SESSION_MISSING: { status: 400, rpc: -32000 },
  ERR_BASTION_SESSION_UNKNOWN: { status: 404, rpc: -32001 },
  ERR_BASTION_SESSION_NOT_INITIALIZED: { status: 400, rpc: -32600 },
  ERR_BASTION_SESSION_LIMIT: { status: 503, rpc: -32603 },
  // identity
  ERR_BASTION_AUTH_MISSING: { status: 401, rpc: -32001 },
  ERR_BASTION_AUTH_INVALID_TOKEN: { status: 401, rpc: -32001 },
  ERR_BASTION_AUTH_INVALID_REQUEST: { status: 400, rpc: -32001 },
  ERR_BASTION_AUTH_INSUFFICIENT_SCOPE: { status: 403, rpc: -32001 },
  ERR_BASTION_AUTH_INVALID_DPOP_PROOF: { status: 401, rpc: -32001 },
  ERR_BASTION_AUTH_USE_DPOP_NONCE: { status: 401, rpc: -32001 },
  ERR_BASTION_AUTH_CLIENT_CERT_REQUIRED: { status: 401, rpc: -32001 },
  ERR_BASTION_AUTH_CLIENT_CERT_INVALID: { status: 401, rpc: -32001 },
  ERR_BASTION_AUTH_UNAVAILABLE: { status: 503, rpc: -32603 },
  // authorization
  ERR_BASTION_POLICY_TOOL_NOT_FOUND: { status: 200, rpc: -32602 },
  ERR_BASTION_POLICY_DENIED: { status: 200, rpc: -32602 },
  ERR_BASTION_POLICY_INVALID_ARGUMENTS: { status: 200, rpc: -32602 },
  // MCP "Resource not found" (-32002): a resource the caller may not read is answered like a missing one
  ERR_BASTION_POLICY_RESOURCE_NOT_FOUND: { status: 200, rpc: -32002 },
  ERR_BASTION_RATE_LIMITED: { status: 429, rpc: -32029 },
  // application
  ERR_BASTION_INTEGRITY_HELD_BACK: { status: 200, rpc: -32603 },
  ERR_BASTION_INTEGRITY_QUARANTINED: { status: 200, rpc: -32603 },
  ERR_BASTION_SANITIZER_BLOCKED: { status: 200, rpc: -32603 },
  ERR_BASTION_SANITIZER_OUTPUT_TOO_LARGE: { status: 200, rpc: -32603 },
  ERR_BASTION_SANITIZER_OUTPUT_SCHEMA: { status: 200, rpc: -32603 },
  // upstream
  ERR_BASTION_UPSTREAM_UNAVAILABLE: { status: 502, rpc: -32603 },
  ERR_BASTION_UPSTREAM_CRASHED: { status: 200, rpc: -32603 },
  ERR_BASTION_UPSTREAM_TIMEOUT: { status: 200, rpc: -32603 },
  ERR_BASTION_UPSTREAM_PROTOCOL: { status: 200, rpc: -32603 },
  ERR_BASTION_UPSTREAM_CREDENTIALS: { status: 502, rpc: -32603 },
  // state
  ERR_BASTION_STATE_UNAVAILABLE: { status: 503, rpc: -32603 },
  ERR_BASTION_AUDIT_UNAVAILABLE: { status: 503, rpc: -32603 },
  // operator-facing (never on the wire to an MCP client)
  ERR_BASTION_CONFIG_INVALID: { status: 500, rpc: -32603 },
  ERR_BASTION_CONFIG_UNREADABLE: { status: 500, rpc: -32603 },
  ERR_BASTION_INTERNAL: { status: 500, rpc: -32603 },
} as const satisfies Record<string, { status: number; rpc: number }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface BastionErrorOptions {
  /** Extra HTTP headers the specification asks for (WWW-Authenticate, Retry-After, DPoP-Nonce). */
  headers?: Record<string, string>;
  /** Public, non-secret details placed in the JSON-RPC error `data`. */
  data?: Record<string, unknown>;
  /** Override the HTTP status of the code (e.g. when an error is delivered in-stream). */
  status?: number;
  /** Internal cause: logged (redacted) by the caller, never sent on the wire. */
  cause?: unknown;
  /** Machine-readable reason for audit records (e.g. `token_expired`). Never secret. */
  reason?: string;
}

export class BastionError extends Error {
  readonly code: ErrorCode;
  readonly headers: Readonly<Record<string, string>>;
  readonly data: Readonly<Record<string, unknown>> | undefined;
  readonly status: number;
  readonly rpcCode: number;
  readonly reason: string;

  constructor(code: ErrorCode, message: string, options: BastionErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BastionError';
    this.code = code;
    this.headers = options.headers ?? {};
    this.data = options.data;
    this.status = options.status ?? ERROR_CODES[code].status;
    this.rpcCode = ERROR_CODES[code].rpc;
    this.reason = options.reason ?? code.slice('ERR_BASTION_'.length).toLowerCase();
  }
}

export function isBastionError(err: unknown): err is BastionError {
  return err instanceof BastionError;
}

export type JsonRpcId = string | number | null;

export interface WireError {
  status: number;
  headers: Record<string, string>;
  body: { jsonrpc: '2.0'; id: JsonRpcId; error: { code: number; message: string; data?: Record<string, unknown> } };
}

/**
 * The one mapping from an error to the response a client sees. Unknown errors become an
 * opaque internal error: their message may carry anything, so it is not sent.
 */
export function toWire(err: unknown, id: JsonRpcId = null): WireError {
  const e = isBastionError(err)
    ? err
    : new BastionError('ERR_BASTION_INTERNAL', 'Internal gateway error', { cause: err });
  const error: WireError['body']['error'] = { code: e.rpcCode, message: e.message };
  if (e.data !== undefined) error.data = { ...e.data };
  return {
    status: e.status,
    headers: { ...e.headers },
    body: { jsonrpc: '2.0', id, error },
  };
}
