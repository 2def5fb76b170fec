/** JSON-RPC 2.0 message shapes as they cross the gateway. Validated structurally on parse. */
export type JsonRpcId = string | number;

export interface JsonRpcRequest {
  jsonrpc: '2.0';
  id: JsonRpcId;
  method: string;
  params?: Record<string, unknown>;
}

export interface JsonRpcNotification {
  jsonrpc: '2.0';
  method: string;
  params?: Record<string, unknown>;
}

export interface JsonRpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

export interface JsonRpcResponse {
  jsonrpc: '2.0';
  id: JsonRpcId | null;
  result?: Record<string, unknown>;
  error?: JsonRpcErrorObject;
}

export type JsonRpcMessage = JsonRpcRequest | JsonRpcNotification | JsonRpcResponse;

export function isRequest(m: JsonRpcMessage): m is JsonRpcRequest {
  return 'method' in m && 'id' in m && m.id !== undefined;
}
export function isNotification(m: JsonRpcMessage): m is JsonRpcNotification {
  return 'method' in m && !('id' in m && m.id !== undefined);
}
export function isResponse(m: JsonRpcMessage): m is JsonRpcResponse {
  return !('method' in m);
}

/**
 * Structural check of one parsed value. Returns the message or a string saying what is wrong.
 * Anything from a client or an upstream passes through here before the gateway acts on it.
 */
export function toMessage(v: unknown): JsonRpcMessage | string {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'a JSON-RPC message must be an object';
  const o = v as Record<string, unknown>;
  if (o.jsonrpc !== '2.0') return 'jsonrpc must be "2.0"';
  const hasId = 'id' in o && o.id !== undefined;
  if (hasId && !(typeof o.id === 'string' || (typeof o.id === 'number' && Number.isFinite(o.id)) || o.id === null)) {
    return 'id must be a string or a number';
  }
  if ('params' in o && o.params !== undefined && (typeof o.params !== 'object' || o.params === null)) {
    return 'params must be an object';
  }
  if ('method' in o) {
    if (typeof o.method !== 'string' || o.method.length === 0) return 'method must be a non-empty string';
    if (hasId && o.id === null) return 'a request id must not be null';
    return o as unknown as JsonRpcMessage;
  }
  if (!hasId) return 'a message needs a method or an id';
  const hasResult = 'result' in o;
  const hasError = 'error' in o;
  if (hasResult === hasError) return 'a response carries exactly one of result or error';
  if (hasError) {
    const e = o.error as Record<string, unknown> | null;
    if (typeof e !== 'object' || e === null || typeof e.code !== 'number' || typeof e.message !== 'string') {
      return 'error must be an object with a numeric code and a message';
    }
  } else if (typeof o.result !== 'object' || o.result === null || Array.isArray(o.result)) {
    return 'result must be an object';
  }
  return o as unknown as JsonRpcMessage;
}

/** The lists a server may offer, by their capability name in the initialize result. */
export const LIST_CAPABILITIES = ['tools', 'prompts', 'resources'] as const;
export type ListCapability = (typeof LIST_CAPABILITIES)[number];

/**
 * The lists an initialize result declares (`capabilities.tools`, `.prompts`, `.resources` given
 * as objects), each with its capability object; empty for anything else.
 */
export function declaredLists(result: unknown): Map<ListCapability, Record<string, unknown>> {
  const out = new Map<ListCapability, Record<string, unknown>>();
  const caps = (result as { capabilities?: unknown } | null | undefined)?.capabilities;
  if (caps === null || typeof caps !== 'object') return out;
  for (const k of LIST_CAPABILITIES) {
    const c = (caps as Record<string, unknown>)[k];
    if (c !== null && typeof c === 'object' && !Array.isArray(c)) out.set(k, c as Record<string, unknown>);
  }
  return out;
}
