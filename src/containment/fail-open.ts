/**
 * `state.failOpen.rateLimits`: a view of the state store for the rate-limit stage whose
 * `takeToken` lets a request through when the store is unreachable (and says so once per
 * outage). Everything else, and every other stage, still fails closed.
 */
import { isBastionError } from '../errors.js';
import type { StateStore, TokenBucketLimit, TokenBucketResult } from '../stores/types.js';

export function failOpenRateLimits(store: StateStore, onOpen: (message: string) => void): StateStore {
  let warned = false;
  const view: StateStore = Object.create(store) as StateStore;
  return Object.assign(view, {
    async takeToken(key: string, limit: TokenBucketLimit, cost?: number): Promise<TokenBucketResult> {
      try {
        const r = await store.takeToken(key, limit, cost);
        warned = false;
        return r;
      } catch (err) {
        if (!isBastionError(err) || err.code !== 'ERR_BASTION_STATE_UNAVAILABLE') throw err;
        if (!warned) {
          warned = true;
          onOpen('state store unreachable: rate limits are NOT enforced (state.failOpen.rateLimits is true) until it returns');
        }
        return { allowed: true, remaining: 0, retryAfterMs: 0 };
      }
    },
  });
}
