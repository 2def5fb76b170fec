/**
 * The public API of mcp-bastion. Named exports only; this list is a contract (test/index.test.ts).
 */
export { BastionError, isBastionError, toWire, ERROR_CODES } from './errors.js';
export type { ErrorCode, WireError } from './errors.js';
export { loadConfigFile, parseConfig } from './config/load.js';
export type { LoadedConfig } from './config/load.js';
export type { Config, ConfigInput, ServerConfig } from './config/schema.js';
export { configJsonSchema } from './config/json-schema.js';
export { startGateway } from './server.js';
export { canonicalResource } from './identity/resource.js';
export type { Gateway, GatewayOptions, StageEnv } from './server.js';
export { startGatewayFromConfig } from './gateway.js';
export type { Stage, RequestContext, MessageContext, Phase } from './pipeline/context.js';
export type { Principal, AuthMethod } from './identity/types.js';
export type { StateStore } from './stores/types.js';
export { MemoryStateStore } from './stores/memory.js';
export { RedisStateStore } from './stores/redis.js';
export type { AuditEvent, AuditLog, AuditSink } from './audit/types.js';
