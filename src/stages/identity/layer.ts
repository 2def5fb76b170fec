/**
 * The identity layer as the gateway wires it, in one object built from the loaded config:
 *
 *   const identity = createIdentityLayer(loaded);           // throws on an unsafe config
 *   for (const w of identity.warnings) logger.warn(w);
 *   startGateway(loaded, {
 *     tls: identity.tls?.serverOptions,                      // https.createServer options
 *     responseHeaders: identity.responseHeaders,             // Strict-Transport-Security
 *     routes: identity.routes,                               // /.well-known/oauth-protected-resource/...
 *     stages: (env) => [identity.stage(env), ...],           // identity.authenticate
 *   });
 *   identity.tls?.attach(httpsServer);                       // reload on change + refuse bad client certs
 *
 * and, per request: ctx.http.peerCertificate = verifiedClientCertificate(req.socket), and the
 * headers in ctx.locals['identity.authenticate'].responseHeaders (a fresh DPoP-Nonce) added to
 * the response.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { LoadedConfig } from '../../config/load.js';
import type { Config } from '../../config/schema.js';
import type { AuditLog } from '../../audit/types.js';
import type { StateStore } from '../../stores/types.js';
import type { Stage } from '../../pipeline/context.js';
import { createMetadataRoute } from '../../identity/resource.js';
import { checkIdentityConfig } from '../../identity/startup.js';
import { createTlsManager, type TlsManager } from '../../tls/manager.js';
import { identityStage } from './authenticate.js';

export interface IdentityLayerOptions {
  now?: () => number;
  env?: NodeJS.ProcessEnv;
  /** Watch TLS files for changes (default true). */
  watchTls?: boolean;
  /** Scopes the authorization layer uses per mount, added to `scopes_supported`. */
  extraScopes?: (mount: string) => readonly string[];
}

export interface IdentityStageEnv {
  config: Readonly<Config>;
  store: StateStore;
  audit: AuditLog;
  publicUrl: string;
}

export interface IdentityLayer {
  /** Start-up warnings to log (insecure but allowed choices). */
  readonly warnings: readonly string[];
  /** TLS manager when `tls` is configured. */
  readonly tls: TlsManager | undefined;
  /** Headers for every response (HSTS when serving HTTPS). */
  readonly responseHeaders: Record<string, string>;
  /** The `identity.authenticate` stage. */
  stage(env: IdentityStageEnv): Stage;
  /** GET routes for protected resource metadata; true when the request was answered. */
  routes(req: IncomingMessage, res: ServerResponse, path: string, env: { publicUrl: string }): boolean;
  /** Stop watching files. */
  close(): void;
}

export function createIdentityLayer(loaded: LoadedConfig, options: IdentityLayerOptions = {}): IdentityLayer {
  const config = loaded.config as Config;
  const report = checkIdentityConfig(config, options.now);
  const tls = config.tls ? createTlsManager(config.tls, { baseDir: loaded.baseDir, watch: options.watchTls ?? true }) : undefined;
  const routeCache = new Map<string, ReturnType<typeof createMetadataRoute>>();
  return {
    warnings: report.warnings,
    tls,
    responseHeaders: tls?.hsts ? { 'Strict-Transport-Security': tls.hsts } : {},
    stage(env) {
      return identityStage({
        config: env.config as Config,
        store: env.store,
        audit: env.audit,
        baseDir: loaded.baseDir,
        ...(options.now ? { now: options.now } : {}),
        ...(options.env ? { env: options.env } : {}),
      });
    },
    routes(req, res, path, env) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return false;
      if (!path.startsWith('/.well-known/oauth-protected-resource')) return false;
      let route = routeCache.get(env.publicUrl);
      if (!route) {
        route = createMetadataRoute(config, env.publicUrl, options.extraScopes);
        routeCache.set(env.publicUrl, route);
      }
      const r = route(path);
      if (!r) return false;
      const body = JSON.stringify(r.body);
      res.writeHead(r.status, { ...r.headers, 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
      return true;
    },
    close() {
      tls?.close();
    },
  };
}
