/**
 * One call from the configuration to a running audit log: build the sinks (file sinks are
 * opened, so a bad path or key fails start-up), then the queue.
 */
import type { AuditQueueConfig, AuditSinkConfig } from '../config/audit.js';
import type { AuditMetricsHooks } from './types.js';
import { createAuditLog, type AuditLogger, type BastionAuditLog } from './log.js';
import { createAuditSinks } from './sinks/index.js';

export interface AuditSetupOptions {
  /** Folder relative sink paths are resolved against (LoadedConfig.baseDir). */
  baseDir?: string;
  logger?: AuditLogger;
  metrics?: AuditMetricsHooks;
  now?: () => number;
  /** Stream for `stdout` sinks (tests). */
  stdout?: NodeJS.WritableStream;
}

export async function createAuditFromConfig(
  audit: { sinks: readonly AuditSinkConfig[]; queue: AuditQueueConfig; stageDurations?: boolean | undefined },
  options: AuditSetupOptions = {},
): Promise<BastionAuditLog> {
  const sinks = await createAuditSinks(audit.sinks, { baseDir: options.baseDir, now: options.now, stdout: options.stdout });
  return createAuditLog({ sinks, queue: audit.queue, logger: options.logger, metrics: options.metrics, now: options.now, stageDurations: stageDurationsFor(audit) });
}

/** audit.stageDurations, or its default: on with an otlp sink (its traces are built from them). */
export function stageDurationsFor(audit: { sinks: readonly AuditSinkConfig[]; stageDurations?: boolean | undefined }): boolean {
  return audit.stageDurations ?? audit.sinks.some((s) => s.type === 'otlp');
}
