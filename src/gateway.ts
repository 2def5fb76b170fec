/**
 * Build a gateway from a configuration: the state store, audit log, TLS and every layer's stages
 * as the configuration asks, then start it. The stage order itself lives in server.ts.
 */
import type { LoadedConfig } from './config/load.js';
import { startGateway, type Gateway, type GatewayOptions } from './server.js';

export async function startGatewayFromConfig(loaded: LoadedConfig, options: GatewayOptions = {}): Promise<Gateway> {
  return startGateway(loaded, options);
}
