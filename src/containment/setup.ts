/**
 * Build the state store and the containment layer from the configuration (used by gateway.ts).
 */
import type { Config } from '../config/schema.js';
import type { StateConfig } from '../config/state.js';
import { isLoopbackHost } from '../config/state.js';
import type { Logger } from '../logger.js';
import { BastionError } from '../errors.js';
import { MemoryStateStore } from '../stores/memory.js';
import { RedisStateStore } from '../stores/redis.js';
import type { StateStore } from '../stores/types.js';
import { resolveSecret } from '../identity/util.js';

export interface StoreSetup {
  store: StateStore;
  /** Resolves when the store is usable (or after a bounded wait: the gateway starts anyway and answers 503 until it is). */
  ready: Promise<boolean>;
}

export function createStateStore(state: StateConfig, opts: { baseDir: string; logger: Logger; env?: NodeJS.ProcessEnv }): StoreSetup {
  if (state.type === 'memory') return { store: new MemoryStateStore(), ready: Promise.resolve(true) };
  let password: string | undefined;
  if (state.password) {
    try {
      password = resolveSecret(state.password, opts.baseDir, opts.env);
    } catch (err) {
      throw new BastionError('ERR_BASTION_CONFIG_INVALID', `Invalid configuration:\n  state.password: ${(err as Error).message}`);
    }
  }
  const { logger } = opts;
  let lastStatus = '';
  const store = new RedisStateStore({
    url: state.url!,
    keyPrefix: state.keyPrefix,
    ...(password ? { password } : {}),
    ...(state.tls !== undefined ? { tls: state.tls } : {}),
    baseDir: opts.baseDir,
    commandTimeoutMs: state.commandTimeoutMs,
    onStatus: (status, detail) => {
      // Log transitions, not every reconnect attempt. Never the URL (it may hold a password).
      const key = `${status}:${detail?.split(':')[0] ?? ''}`;
      if (key === lastStatus) return;
      lastStatus = key;
      if (status === 'ready') logger.info({ connection: detail }, 'state store: Redis connection ready');
      else if (status === 'error') logger.warn({ detail }, 'state store: Redis unreachable; security checks answer 503 until it returns');
    },
  });
  return { store, ready: store.waitReady(Math.max(2000, state.commandTimeoutMs * 3)) };
}

/**
 * Say how the store is shared. A memory store where the deployment looks like it may run
 * several replicas (a wildcard listener, a public URL that is not loopback, or Kubernetes) is
 * a warning: limits, replay protection, revocations and quarantine would be per process.
 */
export function describeStore(store: StateStore, config: Config, logger: Logger, env: NodeJS.ProcessEnv = process.env): void {
  if (store.shared) {
    logger.info({ kind: store.kind }, 'state store: shared between replicas');
    return;
  }
  let publicHost: string | undefined;
  try {
    publicHost = config.publicUrl ? new URL(config.publicUrl).hostname : undefined;
  } catch {
    publicHost = undefined;
  }
  const looksReplicated =
    ['0.0.0.0', '::', ''].includes(config.listen.host) || (publicHost !== undefined && !isLoopbackHost(publicHost)) || env.KUBERNETES_SERVICE_HOST !== undefined;
  const msg =
    'state store: memory (NOT shared between replicas: rate limits, DPoP replay protection, revocations, quarantine and runtime pin approvals hold for this process only). With several replicas set state.type: redis.';
  if (looksReplicated) logger.warn(msg);
  else logger.info(msg);
}
