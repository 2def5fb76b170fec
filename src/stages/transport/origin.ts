/**
 * `transport.origin`: Origin and Host checks on every request (MCP transport security; DNS
 * rebinding). An Origin that is present and not allowed → 403. A Host that is not one of the
 * gateway's own names → 403. Runs first: a rebinding page learns nothing else.
 */
import { BastionError } from '../../errors.js';
import type { Stage } from '../../pipeline/context.js';

export interface OriginPolicy {
  /** Exact origins, lowercase `scheme://host[:port]`. */
  origins: ReadonlySet<string>;
  /** Exact Host header values, lowercase `host[:port]`. */
  hosts: ReadonlySet<string>;
}

/** Origins and hosts the gateway answers to: its public URL, its loopback names, the configured extras. */
export function buildOriginPolicy(opts: {
  publicUrl: string;
  listenHost: string;
  port: number;
  allowedOrigins: readonly string[];
  allowedHosts: readonly string[];
}): OriginPolicy {
  const origins = new Set<string>();
  const hosts = new Set<string>();
  const pub = new URL(opts.publicUrl);
  origins.add(pub.origin.toLowerCase());
  hosts.add(pub.host.toLowerCase());
  const defaultPort = (pub.protocol === 'https:' && pub.port === '') || (pub.protocol === 'http:' && pub.port === '');
  if (defaultPort) hosts.add(`${pub.hostname.toLowerCase()}:${pub.protocol === 'https:' ? 443 : 80}`);
  const loopback = ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(opts.listenHost);
  if (loopback) {
    for (const h of ['localhost', '127.0.0.1', '[::1]']) {
      hosts.add(`${h}:${opts.port}`);
      origins.add(`http://${h}:${opts.port}`);
      origins.add(`https://${h}:${opts.port}`);
    }
  } else {
    const h = opts.listenHost.includes(':') ? `[${opts.listenHost}]` : opts.listenHost;
    hosts.add(`${h}:${opts.port}`);
  }
  for (const o of opts.allowedOrigins) origins.add(o.toLowerCase().replace(/\/+$/, ''));
  for (const h of opts.allowedHosts) hosts.add(h.toLowerCase());
  return { origins, hosts };
}

export function originStage(policy: OriginPolicy): Stage {
  return {
    name: 'transport.origin',
    phase: 'transport',
    onRequest(ctx) {
      const host = ctx.http.headers.host;
      if (typeof host !== 'string' || !policy.hosts.has(host.toLowerCase())) {
        throw new BastionError('ERR_BASTION_TRANSPORT_HOST_FORBIDDEN', 'Forbidden: the Host header does not name this gateway (DNS rebinding protection). Add the name to transport.allowedHosts if it is yours.', {
          reason: 'host_not_allowed',
        });
      }
      const origin = ctx.http.headers.origin;
      if (origin !== undefined && !policy.origins.has(String(origin).toLowerCase())) {
        throw new BastionError('ERR_BASTION_TRANSPORT_ORIGIN_FORBIDDEN', 'Forbidden: requests from this Origin are not allowed. Add it to transport.allowedOrigins if it is trusted.', {
          reason: 'origin_not_allowed',
        });
      }
    },
  };
}
