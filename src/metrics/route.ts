/**
 * The metrics endpoint as a gateway route (GatewayOptions.routes): GET/HEAD `path` answers the
 * Prometheus text format; other methods get 405. Never cached.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { metricsHandler, type Metrics } from './metrics.js';

export function metricsRoute(metrics: Metrics, path = '/metrics'): (req: IncomingMessage, res: ServerResponse, reqPath: string) => Promise<boolean> {
  const handler = metricsHandler(metrics);
  return async (req, res, reqPath) => {
    if (reqPath !== path) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-length': 0 }).end();
      return true;
    }
    const r = await handler();
    res.writeHead(200, { 'content-type': r.contentType, 'content-length': Buffer.byteLength(r.body), 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : r.body);
    return true;
  };
}
