/**
 * A connection from the gateway to one upstream MCP session. Implementations: stdio (a child
 * process) and Streamable HTTP. Messages are JSON-RPC; every byte from the upstream is hostile
 * and is structurally checked before it is delivered.
 */
import type { JsonRpcId, JsonRpcMessage } from '../pipeline/messages.js';

export interface UpstreamHandlers {
  /**
   * A message from the upstream. `relatedTo` is the id (as sent upstream) of the request whose
   * response stream carried it, when the transport can tell (HTTP POST streams); else undefined.
   */
  onMessage(msg: JsonRpcMessage, relatedTo: JsonRpcId | undefined): void;
  /** The connection is gone (process exited, session expired, protocol violation). */
  onClose(reason: UpstreamCloseReason): void;
}

export interface UpstreamCloseReason {
  kind: 'exit' | 'protocol' | 'expired' | 'closed' | 'error';
  /** Operator-facing detail: never sent to clients verbatim, never secret. */
  detail: string;
}

export interface UpstreamSendOptions {
  /** The client's access token, for credential modes that exchange it (never forwarded as is). */
  subjectToken?: string | undefined;
}

export interface UpstreamConnection {
  /** Start the process or open the connection. Rejects when the upstream cannot be reached. */
  start(): Promise<void>;
  /**
   * Send a message. Resolves when it was handed to the upstream (written to stdin, or the POST
   * was accepted); a request's response arrives through onMessage.
   */
  send(msg: JsonRpcMessage, options?: UpstreamSendOptions): Promise<void>;
  /** After initialize: the version the upstream chose (sent as MCP-Protocol-Version on HTTP). */
  setProtocolVersion(version: string): void;
  /** After notifications/initialized: open any server → client channel (HTTP GET stream). */
  afterInitialized(): Promise<void>;
  close(): Promise<void>;
  readonly alive: boolean;
  /** Process id for stdio upstreams (tests, metrics). */
  readonly pid?: number | undefined;
}
