/**
 * The metrics endpoint as a gateway route (GatewayOptions.routes): GET/HEAD `path` answers the
 * Prometheus text format; other methods get 405. Never cached. With a scrape token, a request
 * without `Authorization: Bearer <token>` (compared in constant time) gets 401 and is reported
 * through `onRefused` (the gateway audits it).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { metricsHandler, type Metrics } from './metrics.js';
import { bearerCredential, safeEqual } from '../identity/util.js';

export interface MetricsRouteOptions {
  path?: string;
  /** Bearer token scrapers must send (or its current value, for a rotatable one); undefined: open. */
  token?: string | (() => string | undefined) | undefined;
  onRefused?: (req: IncomingMessage, reason: 'missing_token' | 'invalid_token') => void;
}

export function metricsRoute(metrics: Metrics, options: MetricsRouteOptions = {}): (req: IncomingMessage, res: ServerResponse, reqPath: string) => Promise<boolean> {
  const handler = metricsHandler(metrics);
  const path = options.path ?? '/metrics';
  const expected = options.token;
  return async (req, res, reqPath) => {
    if (reqPath !== path) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-length': 0 }).end();
      return true;
    }
    if (expected !== undefined) {
      const want = typeof expected === 'function' ? expected() : expected;
      const token = bearerCredential(req.headers.authorization);
      if (want === undefined || token === undefined || !safeEqual(token, want)) {
        const reason = token === undefined ? 'missing_token' : 'invalid_token';
        options.onRefused?.(req, reason);
        const body = JSON.stringify({ error: reason === 'missing_token' ? 'unauthorized' : 'invalid_token', message: 'The metrics endpoint needs the scrape token: Authorization: Bearer <metrics.token>.' });
        res.writeHead(401, { 'www-authenticate': `Bearer realm="metrics"${reason === 'invalid_token' ? ', error="invalid_token"' : ''}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
        res.end(body);
        return true;
      }
    }
    const r = await handler();
    res.writeHead(200, { 'content-type': r.contentType, 'content-length': Buffer.byteLength(r.body), 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : r.body);
    return true;
  };
}
