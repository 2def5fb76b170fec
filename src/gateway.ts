/**
 * Build a gateway from a configuration: the state store, the audit log and metrics, TLS, and
 * every layer's stages as the configuration asks, then start it. The order of the stages is
 * fixed by their phases (pipeline/phases.ts); within a phase, by the order listed here.
 */
import type { LoadedConfig } from './config/load.js';
import type { Config } from './config/schema.js';
import { createLogger, type Logger } from './logger.js';
import { startGateway, type Gateway, type GatewayOptions, type StageEnv } from './server.js';
import type { Stage } from './pipeline/context.js';
import type { StateStore } from './stores/types.js';
import { createAuditFromConfig } from './audit/setup.js';
import { auditGateStage } from './audit/gate.js';
import { createMetrics, type Metrics } from './metrics/metrics.js';
import { metricsRoute } from './metrics/route.js';
import { isLoopbackHost } from './config/loopback.js';
import { RotatingSecret } from './identity/util.js';
import { BastionError } from './errors.js';
import type { SecretRef } from './config/auth.js';
import { createIdentityLayer } from './stages/identity/layer.js';
import { loadPolicy } from './policy/load.js';
import { policyStage } from './stages/authorization/policy.js';
import { clientIpRateLimitStage, rateLimitStage } from './stages/authorization/rate-limit.js';
import { argumentValidationStage } from './stages/application/argument-validation.js';
import { ArgumentValidator } from './policy/arguments.js';
import { toolIntegrityStageForConfig } from './stages/application/tool-integrity.js';
import { outputSanitizerStage } from './stages/application/output-sanitizer.js';
import { createAnomalyDetector } from './anomaly/detector.js';
import { anomalyStage } from './audit/anomaly-stage.js';
import { createStateStore, describeStore } from './containment/setup.js';
import { Containment } from './containment/containment.js';
import { failOpenRateLimits } from './containment/fail-open.js';
import { revocationStage } from './stages/identity/revocation.js';
import { quarantineStage } from './stages/application/quarantine.js';
import { startAdminServer, type AdminServer } from './admin/server.js';

export interface FullGatewayOptions extends GatewayOptions {
  /** Stream for `stdout` audit sinks (tests). */
  auditStdout?: NodeJS.WritableStream;
  /** Metrics registry holder (tests); default a new one. */
  metrics?: Metrics;
}

/** The gateway with its admin listener (present when `admin` is configured). */
export interface FullGateway extends Gateway {
  readonly admin: AdminServer | undefined;
}

export async function startGatewayFromConfig(loaded: LoadedConfig, options: FullGatewayOptions = {}): Promise<FullGateway> {
  const config = loaded.config as Config;
  const logger = options.logger ?? createLogger(config.log.level);
  // State store (issue 9): memory by default; redis when state.type says so. Waits a bounded
  // time for Redis: when it is not there the gateway starts anyway and answers 503 (fail closed).
  const storeSetup = options.store ? { store: options.store, ready: Promise.resolve(true) } : createStateStore(config.state, { baseDir: loaded.baseDir, logger });
  const store: StateStore = storeSetup.store;
  describeStore(store, config, logger);
  if (!(await storeSetup.ready)) logger.warn('state store: Redis not reachable at start-up; requests get 503 until it is');
  const containment = new Containment(store, {
    staleAfterMs: config.state.cacheStaleAfterMs,
    onError: (m) => logger.warn(m),
    onSessionEnded: (s, sel) => audit.emit({ type: 'incident.session.terminated', outcome: 'success', sessionId: s.id, mount: s.mount, by: sel.by }),
  });
  await containment.start();
  const rateLimitStore = (s: StateStore): StateStore => (config.state.failOpen.rateLimits ? failOpenRateLimits(s, (m) => logger.warn(m)) : s);

  const metrics = options.metrics ?? (config.metrics.enabled ? createMetrics() : undefined);
  const audit =
    options.audit ??
    (await createAuditFromConfig(config.audit, {
      baseDir: loaded.baseDir,
      logger,
      ...(metrics ? { metrics } : {}),
      ...(options.auditStdout ? { stdout: options.auditStdout } : {}),
    }));

  // Every scope the policy names for a mount is advertised in its resource metadata.
  const policyScopes = (mount: string): string[] => {
    const tools = (config.servers[mount] as { tools?: Record<string, { scopes?: string[] }> } | undefined)?.tools ?? {};
    return [...new Set(Object.values(tools).flatMap((t) => t.scopes ?? []))];
  };
  const identity = createIdentityLayer(loaded, { extraScopes: policyScopes });
  for (const w of identity.warnings) logger.warn(w);

  const policy = await loadPolicy(config, loaded.baseDir);
  const validator = new ArgumentValidator();
  const metricsToken = config.metrics.token === undefined ? undefined : readMetricsToken(config.metrics.token, loaded, logger);
  if (metrics && config.metrics.enabled && metricsToken === undefined && !isLoopbackHost(config.listen.host)) {
    logger.warn(`metrics: ${config.metrics.path} is readable by anyone who reaches ${config.listen.host}:${config.listen.port} (mount and tool names, decision counts); set metrics.token to require a scrape token`);
  }
  const metricsRoutes =
    metrics && config.metrics.enabled
      ? metricsRoute(metrics, {
          path: config.metrics.path,
          token: metricsToken ? () => metricsToken.current() : undefined,
          onRefused: (req, reason) =>
            audit.emit({ type: 'request.rejected', outcome: 'denied', reason: `metrics_${reason}`, code: 'ERR_BASTION_METRICS_UNAUTHORIZED', status: 401, method: req.method ?? 'GET', path: config.metrics.path, clientIp: req.socket.remoteAddress }),
        })
      : undefined;

  const detector = config.anomaly.enabled ? createAnomalyDetector({ store, config: config.anomaly }) : undefined;

  const stages = (env: StageEnv): Stage[] => [
    // transport: fail closed when the audit trail cannot record (queue full under `block`)
    auditGateStage(env.audit),
    // transport: per-client-IP limits count every request before identity spends a signature check on it
    clientIpRateLimitStage({ policy, store: rateLimitStore(env.store), audit: env.audit }),
    // identity: who is calling (identity.session is placed after it by server.ts)
    identity.stage({ config: env.config, store: env.store, audit: env.audit, publicUrl: env.publicUrl }),
    // identity: the operator's deny-list (token, subject, client, certificate), from the local cache
    revocationStage({ containment, audit: env.audit, config: env.config }),
    // authorization: anomalies first (a suspended credential is refused, a throttled one slowed)
    ...(detector ? [anomalyStage({ detector, audit: env.audit, ...(metrics ? { metrics } : {}), onError: (e) => logger.warn({ err: String(e) }, 'anomaly detection failed') })] : []),
    // rate limits first: they count only calls the policy would allow, so a 429 never reveals a hidden tool
    rateLimitStage({ policy, store: rateLimitStore(env.store), audit: env.audit }),
    policyStage({ policy, audit: env.audit, config: env.config }),
    // application: arguments, definitions, outputs
    // quarantined tools (incident containment) are refused before any other application work
    quarantineStage({ containment }),
    argumentValidationStage({ policy, audit: env.audit, validator }),
    toolIntegrityStageForConfig(loaded, { store: env.store, audit: env.audit }),
    outputSanitizerStage({ audit: env.audit, sanitize: config.sanitize }),
  ];

  /** What this function set up around the server, released in reverse order (on failure and at close). */
  const releaseLayers = async (): Promise<void> => {
    identity.close();
    await containment.close();
    await audit.close();
    if (!options.store) await store.close();
  };

  let gw: Gateway;
  try {
    gw = await startGateway(loaded, {
      ...options,
      logger,
      store,
      audit,
      ...(identity.tls ? { tls: identity.tls.serverOptions } : {}),
      onServer: (server) => {
        if (identity.tls && 'setSecureContext' in server) identity.tls.attach(server);
        options.onServer?.(server);
      },
      responseHeaders: { ...identity.responseHeaders, ...options.responseHeaders },
      ...(metrics ? { observe: (o) => metrics.observeRequest(o) } : {}),
      stages: async (env) => [...stages(env), ...(options.stages ? await options.stages(env) : [])],
      routes: async (req, res, path, env) => {
        if (identity.routes(req, res, path, env)) return true;
        if (metricsRoutes && (await metricsRoutes(req, res, path))) return true;
        return options.routes ? options.routes(req, res, path, env) : false;
      },
    });
  } catch (err) {
    await releaseLayers();
    throw err;
  }
  containment.attachSessions(gw.sessions);
  let admin: AdminServer | undefined;
  if (config.admin) {
    try {
      admin = await startAdminServer({ config: config.admin, baseDir: loaded.baseDir, containment, audit, logger });
    } catch (err) {
      await gw.close();
      await releaseLayers();
      throw err;
    }
  }
  const close = gw.close;
  return Object.assign(Object.create(Object.getPrototypeOf(gw) as object) as Gateway, gw, {
    admin,
    async close() {
      await admin?.close();
      await close();
      await releaseLayers();
    },
  });
}

/**
 * The metrics scrape token, rotatable through its file (RotatingSecret); a missing variable or
 * file stops the gateway naming the key and file.
 */
function readMetricsToken(ref: SecretRef, loaded: LoadedConfig, logger: Logger): RotatingSecret {
  try {
    return new RotatingSecret(ref, loaded.baseDir, process.env, {
      onChange: (event, detail) =>
        event === 'rotated' ? logger.info({ file: detail }, 'metrics token file changed: the new token is in force') : logger.error({ err: detail }, 'metrics token file unreadable: /metrics refuses every scrape until it is readable'),
    });
  } catch (err) {
    throw new BastionError('ERR_BASTION_CONFIG_INVALID', `Invalid configuration${loaded.file ? ` in ${loaded.file}` : ''}:\n  metrics.token: ${(err as Error).message}`);
  }
}
