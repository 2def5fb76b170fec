/**
 * Start-up checks of the identity configuration: refusals (thrown as config errors) and loud
 * warnings for insecure choices. The server calls this once after loading the config and logs
 * the warnings.
 */
import { BastionError } from '../errors.js';
import type { Config } from '../config/schema.js';
import { isLoopbackHost } from '../config/loopback.js';
import { authRequired } from './resource.js';
import { createApiKeyVerifier } from './api-keys.js';


export interface IdentityStartupReport {
  warnings: string[];
}

export function checkIdentityConfig(config: Config, now: () => number = Date.now): IdentityStartupReport {
  const warnings: string[] = [];
  const errors: string[] = [];
  const loopback = isLoopbackHost(config.listen.host);
  for (const [name, s] of Object.entries(config.servers)) {
    const required = authRequired(config, s.auth);
    if (!required) {
      if (!loopback && !s.auth.allowUnauthenticated) {
        errors.push(
          `servers.${name}.auth: authentication is off on a listener reachable beyond loopback (${config.listen.host}); configure auth.issuers, or set servers.${name}.auth.allowUnauthenticated: true if this is really intended`,
        );
      } else if (!loopback) {
        warnings.push(`servers.${name}: accepts unauthenticated requests on ${config.listen.host} (allowUnauthenticated: true)`);
      }
    }
    if (s.auth.mtls === 'required' && !(config.tls?.clientCa && (config.tls.requestClientCert || config.tls.requireClientCert))) {
      errors.push(`servers.${name}.auth.mtls is required but tls.clientCa with tls.requestClientCert (or requireClientCert) is not configured`);
    }
    if (required && config.auth.issuers.length === 0 && !config.auth.apiKeys.enabled && s.auth.mtls !== 'required') {
      errors.push(`servers.${name}.auth.required is true but nothing can authenticate a request: add auth.issuers`);
    }
  }
  for (const i of config.auth.issuers) {
    if (i.audience.length > 0) warnings.push(`auth.issuers ${i.issuer}: extra audiences ${i.audience.join(', ')} make its tokens valid at every mount`);
    if (i.symmetricKey) warnings.push(`auth.issuers ${i.issuer}: a shared HMAC key is configured; anyone holding it can mint tokens`);
  }
  try {
    warnings.push(...createApiKeyVerifier(config.auth.apiKeys, now).warnings);
  } catch (err) {
    errors.push((err as Error).message);
  }
  // Without a secret, replicas sharing a state store (state.type: redis) agree on one key
  // through it (identity/dpop.ts); only a per-process store leaves the key per process.
  if (config.auth.dpop.nonce.enabled && !config.auth.dpop.nonce.secret && config.state.type !== 'redis') {
    warnings.push(
      'auth.dpop.nonce.secret is not set and the state store is not shared (state.type: memory): nonces are per process, so replicas behind one load balancer will refuse each other\'s nonces; set auth.dpop.nonce.secret or state.type: redis',
    );
  }
  if (errors.length > 0) {
    throw new BastionError('ERR_BASTION_CONFIG_INVALID', `Invalid configuration:\n  ${errors.join('\n  ')}`);
  }
  return { warnings };
}
